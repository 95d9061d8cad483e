//! Route matching over a fixed table with fuzzed paths: never panics, and a match reverses to a path that
//! matches the same route again.
#![no_main]

use gale_web::routing::Router;
use libfuzzer_sys::fuzz_target;

fn table() -> Router<u8> {
    let mut router = Router::new();
    router.add(r"/", Some("home"), 0).unwrap();
    router.add(r"/static/(.*)", Some("static"), 1).unwrap();
    router.add(r"/user/(\d+)/posts/([^/]+)", Some("post"), 2).unwrap();
    router.add(r"/a/message/new", None, 3).unwrap();
    router.add(r"/files/(.+)\.txt", Some("file"), 4).unwrap();
    router
}

thread_local! {
    static ROUTER: Router<u8> = table();
}

fuzz_target!(|data: &[u8]| ROUTER.with(|router| check(router, data)));

fn check(router: &Router<u8>, data: &[u8]) {
    let path = String::from_utf8_lossy(data);
    if let Some((&target, args)) = router.find(&path) {
        let name = match target {
            0 => "home",
            1 => "static",
            2 => "post",
            4 => "file",
            _ => return,
        };
        let values: Vec<String> = args
            .positional()
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_deref().unwrap_or(b"")).into_owned())
            .collect();
        if values.iter().any(|v| v.contains('\u{fffd}')) {
            return;
        }
        if let Ok(url) = router.reverse_url(name, &values) {
            let (again, _) = router.find(&url).expect("a reversed URL matches");
            assert_eq!(*again, target, "{path:?} -> {url:?}");
        }
    }
}
