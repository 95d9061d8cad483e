//! The `Date` header value, cached per thread and formatted at most once a second.
//!
//! Every response carries `Date` (RFC 9110 §6.6.1) in IMF-fixdate form, `Sun, 06 Nov 1994 08:49:37 GMT`, always
//! 29 bytes. Formatting it per response would cost more than the rest of the head, so each thread keeps the
//! value for the current second and reformats only when the second changes.

use bytes::BytesMut;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate.
pub const DATE_VALUE_LENGTH: usize = 29;

/// Length of a whole `Date: <IMF-fixdate>\r\n` line.
pub(crate) const DATE_LINE_LENGTH: usize = DATE_VALUE_LENGTH + 8;

struct Cache {
    /// The second the line is for: `[from, until)`. Empty before the first use.
    from: Cell<SystemTime>,
    until: Cell<SystemTime>,
    line: Cell<[u8; DATE_LINE_LENGTH]>,
    /// When the line was made for the current time: until when it stays right, on the monotonic clock.
    mono_until: Cell<Option<Instant>>,
    /// A `Server` line followed by the `Date` line, as [`put_lines_mono`] appends them: `block_len` bytes,
    /// for the server line called `block_server`, right until `block_until` (`None`: nothing kept); then
    /// [`LENGTH_PREFIX`].
    block: RefCell<[u8; BLOCK_LENGTH]>,
    block_len: Cell<usize>,
    block_server: Cell<u64>,
    block_until: Cell<Option<Instant>>,
}

/// Room for a `Server` line and the `Date` line, kept together; a longer `Server` line is appended apart.
const BLOCK_LENGTH: usize = 128;

thread_local! {
    static CACHE: Cache = const {
        Cache {
            from: Cell::new(UNIX_EPOCH),
            until: Cell::new(UNIX_EPOCH),
            line: Cell::new([0; DATE_LINE_LENGTH]),
            mono_until: Cell::new(None),
            block: RefCell::new([0; BLOCK_LENGTH]),
            block_len: Cell::new(0),
            block_server: Cell::new(0),
            block_until: Cell::new(None),
        }
    };
}

#[cfg(test)]
thread_local! {
    static FORMATS: Cell<usize> = const { Cell::new(0) };
}

/// The current time as an IMF-fixdate, e.g. `b"Sun, 06 Nov 1994 08:49:37 GMT"`.
///
/// # Examples
///
/// ```
/// let date = gale_http1::proto::date::now();
/// assert!(date.ends_with(b" GMT"));
/// assert!(httpdate::parse_http_date(std::str::from_utf8(&date).unwrap()).is_ok());
/// ```
pub fn now() -> [u8; DATE_VALUE_LENGTH] {
    at(SystemTime::now())
}

/// `time` as an IMF-fixdate, using (and refreshing) this thread's cache: for a time in the same second as the
/// last call this is a copy.
pub fn at(time: SystemTime) -> [u8; DATE_VALUE_LENGTH] {
    let line = line_at(time);
    let mut value = [0; DATE_VALUE_LENGTH];
    value.copy_from_slice(&line[6..6 + DATE_VALUE_LENGTH]);
    value
}

/// The whole `Date: ...\r\n` line for the current time.
#[inline]
pub(crate) fn line() -> [u8; DATE_LINE_LENGTH] {
    line_at(SystemTime::now())
}

/// The `Date` line for now, given the current time on the monotonic clock (an event loop's cached time will
/// do: a time read earlier only makes the line be renewed earlier). The wall clock is read only when the
/// second may have changed, not per response.
#[inline]
pub(crate) fn line_mono(mono: Instant) -> [u8; DATE_LINE_LENGTH] {
    CACHE.with(|cache| {
        if cache.mono_until.get().is_some_and(|until| mono < until) {
            return cache.line.get();
        }
        let wall = SystemTime::now();
        let line = line_at(wall);
        let into = wall.duration_since(cache.from.get()).unwrap_or_default();
        cache.mono_until.set(Some(mono + Duration::from_secs(1).saturating_sub(into)));
        line
    })
}

/// Appends `server` (a whole `Server: ...\r\n` line, or nothing), then the `Date` line for now, given the
/// current time on the monotonic clock as [`line_mono`] does. `server_id` names the contents of `server`: the
/// same id must always come with the same bytes. The two lines are kept together per thread, so that the usual
/// response appends them in one copy.
#[inline(always)]
pub(crate) fn put_lines_mono(mono: Instant, server_id: u64, server: &[u8], dst: &mut BytesMut) {
    CACHE.with(|cache| {
        cache.put_lines(mono, server_id, server, dst);
    })
}

impl Cache {
    /// Whether the kept block holds the lines for `server_id`, and its date line is right at `mono`.
    #[inline(always)]
    fn block_fresh(&self, mono: Instant, server_id: u64) -> bool {
        self.block_server.get() == server_id && self.block_until.get().is_some_and(|until| mono < until)
    }

    /// [`put_lines_mono`] on this thread's cache; returns until when the `Date` line written stays right.
    #[inline(always)]
    fn put_lines(&self, mono: Instant, server_id: u64, server: &[u8], dst: &mut BytesMut) -> Option<Instant> {
        if self.block_fresh(mono, server_id) {
            dst.extend_from_slice(&self.block.borrow()[..self.block_len.get()]);
            self.block_until.get()
        } else {
            renew_lines(self, mono, server_id, server, dst)
        }
    }
}

/// [`put_lines_mono`], then the line ending the head, `Content-Length: len` and the empty line: the usual
/// response's last lines. The kept lines are followed by `Content-Length: ` in the block, and a block short
/// enough is appended as a copy of known size (the bytes past its end dropped again), so that the usual
/// response appends them in two copies of known size. Returns until when the `Date` line written stays right,
/// on the monotonic clock.
#[inline(always)]
pub(crate) fn put_lines_and_length_mono(
    mono: Instant,
    server_id: u64,
    server: &[u8],
    len: u64,
    dst: &mut BytesMut,
) -> Option<Instant> {
    CACHE.with(|cache| {
        if len < 10_000 && cache.block_fresh(mono, server_id) {
            let n = cache.block_len.get() + LENGTH_PREFIX.len();
            let block = cache.block.borrow();
            if n <= SHORT_BLOCK {
                let at = dst.len();
                dst.extend_from_slice(&block[..SHORT_BLOCK]);
                dst.truncate(at + n);
            } else {
                dst.extend_from_slice(&block[..n]);
            }
            super::head::end_head_with_digits(dst, len);
            cache.block_until.get()
        } else {
            renew_lines_and_length(cache, mono, server_id, server, len, dst)
        }
    })
}

/// [`put_lines_and_length_mono`] when the kept lines are not right for now, or the length is long: kept out of
/// line, so that the usual case is small.
#[cold]
#[inline(never)]
fn renew_lines_and_length(
    cache: &Cache,
    mono: Instant,
    server_id: u64,
    server: &[u8],
    len: u64,
    dst: &mut BytesMut,
) -> Option<Instant> {
    let until = cache.put_lines(mono, server_id, server, dst);
    super::head::end_head_with_length(dst, len);
    until
}

/// The start of the `Content-Length` line, kept after the `Server` and `Date` lines in the block.
const LENGTH_PREFIX: &[u8] = b"Content-Length: ";

/// How many bytes of the block [`put_lines_and_length_mono`] copies at once when what it holds fits.
const SHORT_BLOCK: usize = 80;

/// [`put_lines_mono`] when the kept lines are not right for now: writes them anew, and keeps them if they fit
/// (with [`LENGTH_PREFIX`] after them). Returns until when the `Date` line stays right.
#[cold]
#[inline(never)]
fn renew_lines(cache: &Cache, mono: Instant, server_id: u64, server: &[u8], dst: &mut BytesMut) -> Option<Instant> {
    let line = line_mono(mono);
    // Read before anything else can format another time (which forgets it).
    let until = cache.mono_until.get();
    dst.extend_from_slice(server);
    dst.extend_from_slice(&line);
    let len = server.len() + line.len();
    if len + LENGTH_PREFIX.len() <= BLOCK_LENGTH {
        let mut block = cache.block.borrow_mut();
        block[..server.len()].copy_from_slice(server);
        block[server.len()..len].copy_from_slice(&line);
        block[len..len + LENGTH_PREFIX.len()].copy_from_slice(LENGTH_PREFIX);
        cache.block_len.set(len);
        cache.block_server.set(server_id);
        // The line is right as long as line_mono's shortcut is, whatever is formatted in between.
        cache.block_until.set(until);
    } else {
        cache.block_until.set(None);
    }
    until
}

fn line_at(time: SystemTime) -> [u8; DATE_LINE_LENGTH] {
    CACHE.with(|cache| {
        // Two comparisons on the hot path; the clock may also step backwards.
        if time >= cache.until.get() || time < cache.from.get() {
            cache.mono_until.set(None);
            let second = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let from = UNIX_EPOCH + Duration::from_secs(second);
            cache.line.set(format_line(from));
            cache.from.set(from);
            cache.until.set(from + Duration::from_secs(1));
        }
        cache.line.get()
    })
}

/// Formats the `Date` line for `time` (seconds precision) without allocating.
fn format_line(time: SystemTime) -> [u8; DATE_LINE_LENGTH] {
    #[cfg(test)]
    FORMATS.with(|n| n.set(n.get() + 1));
    let mut line = [0; DATE_LINE_LENGTH];
    line[..6].copy_from_slice(b"Date: ");
    // IMF-fixdate is always 29 bytes, so this cannot run out of room; if it ever did, the value would be
    // truncated rather than the server failing.
    let _ = write!(&mut line[6..6 + DATE_VALUE_LENGTH], "{}", httpdate::HttpDate::from(time));
    line[DATE_LINE_LENGTH - 2..].copy_from_slice(b"\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats() -> usize {
        FORMATS.with(Cell::get)
    }

    #[test]
    fn formats_imf_fixdate() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(&at(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn reformats_only_when_the_second_changes() {
        let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = at(base);
        let before = formats();
        assert_eq!(at(base + Duration::from_millis(999)), first);
        assert_eq!(at(base + Duration::from_millis(500)), first);
        assert_eq!(formats(), before, "same second: served from the cache");
        let next = at(base + Duration::from_secs(1));
        assert_ne!(next, first);
        assert_eq!(&next, b"Tue, 14 Nov 2023 22:13:21 GMT");
        assert_eq!(formats(), before + 1);
    }

    #[test]
    fn a_clock_stepping_back_reformats() {
        let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = at(base);
        let earlier = at(base - Duration::from_millis(1));
        assert_eq!(&earlier, b"Tue, 14 Nov 2023 22:13:19 GMT");
        assert_ne!(earlier, later);
    }

    #[test]
    fn the_line_wraps_the_value() {
        let line = line_at(UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(&line, b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    }

    #[test]
    fn the_monotonic_path_reads_the_wall_clock_at_most_once_a_second() {
        let until = || CACHE.with(|c| c.mono_until.get()).expect("set by line_mono");
        let mono = Instant::now();
        let line = line_mono(mono);
        let first = until();
        assert!(first > mono && first <= mono + Duration::from_secs(1), "valid for the rest of this second");
        // Within that time: the cached line, and the validity is not moved.
        assert_eq!(line_mono(first - Duration::from_nanos(1)), line);
        assert_eq!(until(), first);
        // Past it: the wall clock is read again and the validity starts from the time given.
        let later = first + Duration::from_millis(1);
        let renewed = line_mono(later);
        assert!(until() > later && until() <= later + Duration::from_secs(1));
        assert!(std::str::from_utf8(&renewed).unwrap().starts_with("Date: "));
        // Formatting an arbitrary time invalidates the shortcut.
        let _ = at(UNIX_EPOCH);
        assert!(CACHE.with(|c| c.mono_until.get()).is_none());
    }

    #[test]
    fn server_and_date_lines_are_kept_together_per_server_line() {
        let put = |mono, id, server: &[u8]| {
            let mut out = BytesMut::new();
            put_lines_mono(mono, id, server, &mut out);
            String::from_utf8(out.to_vec()).unwrap()
        };
        let mono = Instant::now();
        let date = String::from_utf8(line_mono(mono).to_vec()).unwrap();
        let gale = put(mono, 1, b"Server: gale\r\n");
        assert_eq!(gale, format!("Server: gale\r\n{date}"));
        // Kept: the same again, as long as the date line is right.
        assert_eq!(put(mono, 1, b"Server: gale\r\n"), gale);
        // Another server line (or none) replaces the kept one.
        assert_eq!(put(mono, 7, b"Server: other\r\n"), format!("Server: other\r\n{date}"));
        assert_eq!(put(mono, 0, b""), date);
        assert_eq!(put(mono, 1, b"Server: gale\r\n"), gale);
        // Formatting another time leaves the kept lines right for now.
        let _ = at(UNIX_EPOCH);
        assert_eq!(put(mono, 1, b"Server: gale\r\n"), gale);
        // Past the second: renewed from the wall clock.
        let later = CACHE.with(|c| c.block_until.get()).unwrap() + Duration::from_millis(1);
        let renewed = put(later, 1, b"Server: gale\r\n");
        assert!(renewed.starts_with("Server: gale\r\nDate: ") && renewed.ends_with(" GMT\r\n"));
        assert!(CACHE.with(|c| c.block_until.get()).unwrap() > later);
        // A server line too long to keep is written all the same.
        let long = format!("Server: {}\r\n", "x".repeat(200));
        let text = put(later, 9, long.as_bytes());
        assert!(text.starts_with(&long) && text.ends_with(" GMT\r\n"));
        assert!(CACHE.with(|c| c.block_until.get()).is_none());
    }

    #[test]
    fn lines_and_length_are_the_lines_then_the_length_line() {
        let mono = Instant::now();
        let long = format!("Server: {}\r\n", "x".repeat(200));
        let servers: [(u64, &[u8]); 5] = [
            (1, b"Server: gale\r\n"),
            (0, b""),
            (11, b"Server: a-rather-longer-name-for-a-server/1.0\r\n"),
            (12, b"Server: a-much-much-longer-name-for-a-server-that-no-longer-fits-at-once/1.0\r\n"),
            (13, long.as_bytes()),
        ];
        for (id, server) in servers {
            for len in [0, 7, 13, 99, 100, 999, 1000, 9999, 10_000, 123_456_789] {
                // Twice: once renewing (or not keeping) the lines, once from what is kept.
                for _ in 0..2 {
                    let mut expected = BytesMut::from(&b"before"[..]);
                    put_lines_mono(mono, id, server, &mut expected);
                    expected.extend_from_slice(format!("Content-Length: {len}\r\n\r\n").as_bytes());
                    let mut out = BytesMut::from(&b"before"[..]);
                    put_lines_and_length_mono(mono, id, server, len, &mut out);
                    assert_eq!(out, expected, "{id} {len}");
                }
            }
        }
    }

    #[test]
    fn now_is_a_parseable_current_date() {
        let date = now();
        let parsed = httpdate::parse_http_date(std::str::from_utf8(&date).unwrap()).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew < Duration::from_secs(5));
    }
}
