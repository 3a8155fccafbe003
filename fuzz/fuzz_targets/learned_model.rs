//! `LearnedModel::from_bytes` on the input as it is (mostly stopped by the checksum), then with its
//! checksum rewritten so mutations reach the decoder. A model that loads predicts, and writes itself
//! back to bytes that load to the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::classify::LearnedModel;

fuzz_target!(|data: &[u8]| {
    let _ = LearnedModel::from_bytes(data);
    let mut sealed = data.to_vec();
    switchyard::__fuzz::seal_learned_model(&mut sealed);
    let Ok(model) = LearnedModel::from_bytes(&sealed) else { return };
    let prediction = model.predict("Write a Rust function that reverses a string, then prove it correct.");
    for i in 0..model.info().models.len() {
        let _ = prediction.probability(i);
    }
    let bytes = model.to_bytes();
    let again = LearnedModel::from_bytes(&bytes).expect("a written model reads back");
    assert!(again.to_bytes() == bytes, "a model read back writes the same bytes");
});
