//! The built-in backends, one file each, and the wake-up fd they share. The platform choice is made here, once.

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod epoll;
#[cfg(gale_kqueue)]
pub(crate) mod kqueue;
pub(crate) mod poll;
// rustix offers an unlimited `select` only here (illumos's, for one, is capped at `FD_SETSIZE`).
#[cfg(gale_select)]
pub(crate) mod select;
pub(crate) mod wake;
