//! The server-sent event parser: any split of the input into chunks gives the same events (or the
//! same failure) as the whole, and no event is larger than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::__fuzz::sse;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the limit and where to cut; the rest is the stream.
    let (max, cut, body) = match data {
        [m, c, rest @ ..] => (usize::from(*m) * 16 + 1, usize::from(*c), rest),
        _ => return,
    };
    let whole = sse(&[body], max);
    let (a, rest) = body.split_at(cut.min(body.len()));
    let (b, c) = rest.split_at((cut / 2).min(rest.len()));
    let split = sse(&[a, b, c], max);
    match (&whole, &split) {
        (Ok(w), Ok(s)) => {
            assert_eq!(w, s, "the events depend on where chunks end");
            assert!(w.iter().all(|(_, d)| d.len() <= max), "an event over the limit");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("the outcome depends on where chunks end: {whole:?} vs {split:?}"),
    }
});
