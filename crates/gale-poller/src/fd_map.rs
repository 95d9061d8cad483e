//! [`FdMap`]: a small map keyed by file descriptor, for backends and loops that look fds up per event.

use rustix::fd::RawFd;

/// A map from file descriptors to `u32` values, held in a vector indexed by the fd.
///
/// The kernel hands out the lowest free descriptor, so the fds of a process are small and dense: a lookup is a
/// bounds check and a load, with no hashing, and the vector grows to the highest fd inserted. Any `u32` but
/// `u32::MAX` can be stored (that value marks a vacant slot). Negative fds are never valid and are never
/// found.
///
/// Backends written outside this crate may use it too.
///
/// # Examples
///
/// ```
/// use gale_poller::FdMap;
///
/// let mut map = FdMap::new();
/// assert_eq!(map.insert(7, 1), None);
/// assert_eq!(map.insert(7, 2), Some(1));
/// assert_eq!((map.get(7), map.get(8), map.len()), (Some(2), None, 1));
/// assert_eq!(map.remove(7), Some(2));
/// assert!(map.is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct FdMap {
    slots: Vec<u32>,
    len: usize,
}

impl FdMap {
    /// The slot of an fd with no value.
    const VACANT: u32 = u32::MAX;

    /// An empty map.
    pub fn new() -> FdMap {
        FdMap::default()
    }

    /// The value of `fd`, if it has one.
    #[inline]
    pub fn get(&self, fd: RawFd) -> Option<u32> {
        match self.slots.get(usize::try_from(fd).ok()?) {
            Some(&v) if v != Self::VACANT => Some(v),
            _ => None,
        }
    }

    /// Whether `fd` has a value.
    #[inline]
    pub fn contains(&self, fd: RawFd) -> bool {
        self.get(fd).is_some()
    }

    /// Sets the value of `fd`, returning the one it replaces.
    ///
    /// # Panics
    ///
    /// If `fd` is negative or `value` is `u32::MAX`.
    pub fn insert(&mut self, fd: RawFd, value: u32) -> Option<u32> {
        assert!(value != Self::VACANT, "u32::MAX cannot be stored in an FdMap");
        let i = usize::try_from(fd).expect("a file descriptor is not negative");
        if i >= self.slots.len() {
            self.grow(i);
        }
        let old = std::mem::replace(&mut self.slots[i], value);
        if old == Self::VACANT {
            self.len += 1;
            None
        } else {
            Some(old)
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, i: usize) {
        self.slots.resize((i + 1).next_power_of_two().max(64), Self::VACANT);
    }

    /// Removes the value of `fd`, returning it.
    pub fn remove(&mut self, fd: RawFd) -> Option<u32> {
        let slot = self.slots.get_mut(usize::try_from(fd).ok()?)?;
        match std::mem::replace(slot, Self::VACANT) {
            Self::VACANT => None,
            old => {
                self.len -= 1;
                Some(old)
            }
        }
    }

    /// How many fds have a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no fd has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_replaced_and_removed_by_fd() {
        let mut map = FdMap::new();
        assert_eq!((map.get(5), map.get(-1), map.remove(5), map.remove(-1)), (None, None, None, None));
        assert_eq!(map.insert(5, 0), None);
        assert_eq!(map.insert(700, 3), None);
        assert_eq!((map.get(5), map.get(700), map.get(6), map.len()), (Some(0), Some(3), None, 2));
        assert_eq!(map.insert(5, u32::MAX - 1), Some(0));
        assert_eq!((map.get(5), map.len()), (Some(u32::MAX - 1), 2));
        assert_eq!(map.remove(700), Some(3));
        assert_eq!((map.remove(700), map.get(700), map.len()), (None, None, 1));
        map.clear();
        assert_eq!((map.get(5), map.len()), (None, 0));
    }
}
