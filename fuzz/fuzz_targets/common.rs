//! Shared by the fuzz targets: report a failed property as the panic libFuzzer looks
//! for, and let through the panics a target provokes on purpose.

/// Panics with the property that failed.
pub fn check(result: Result<(), String>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}

// Not every target provokes panics on purpose.
#[allow(dead_code)]
/// Keeps libFuzzer's abort-on-panic hook for every panic except the ones whose message
/// starts with `fuzz: `, which a target raises on purpose (a panicking update closure)
/// and the store must catch.
pub fn allow_deliberate_panics() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let deliberate = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|m| m.starts_with("fuzz: "));
        if !deliberate {
            abort(info);
        }
    }));
}
