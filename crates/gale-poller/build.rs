//! Names the platform groups once, as cfg aliases: `gale_kqueue` where kqueue exists, `gale_select` where
//! rustix offers `select`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gale_kqueue)");
    println!("cargo::rustc-check-cfg=cfg(gale_select)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let kqueue = matches!(os.as_str(), "macos" | "ios" | "freebsd" | "netbsd" | "openbsd" | "dragonfly");
    if kqueue {
        println!("cargo::rustc-cfg=gale_kqueue");
    }
    if kqueue || matches!(os.as_str(), "linux" | "android") {
        println!("cargo::rustc-cfg=gale_select");
    }
}
