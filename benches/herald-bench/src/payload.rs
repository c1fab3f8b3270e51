//! Payloads that compress like real pushes (`--json SIZE`): a catalog update
//! as JSON, an array of small objects with ids, names, categories, prices
//! and tags, about 3x smaller deflated at 1 KiB (filler would shrink 50x and
//! flatter any compression).
//!
//! The items are the same in every document of a size (a fixed seed), so
//! runs compare; only `seq` changes.

const NAMES: [&str; 16] = [
    "Wireless mouse",
    "USB-C cable",
    "Laptop stand",
    "Desk lamp",
    "Notebook A5",
    "Coffee mug",
    "Backpack",
    "Water bottle",
    "Headphones",
    "Phone case",
    "Keyboard",
    "Monitor arm",
    "Webcam",
    "Charger 65W",
    "Mouse pad",
    "Pen set",
];
const CATEGORIES: [&str; 4] = ["accessories", "office", "audio", "home"];
const TAGS: [&str; 8] = [
    "sale",
    "new",
    "eco",
    "gift",
    "bestseller",
    "limited",
    "bundle",
    "clearance",
];
const CENTS: [u32; 4] = [0, 49, 99, 95];

/// A JSON object of at most `size` bytes (at least one item, so about
/// 180 bytes at the least), as close to `size` as whole items allow:
/// `{"type":"catalog.update","seq":SEQ,"items":[{"id":..},..]}`.
pub fn json_doc(size: usize, seq: usize) -> String {
    let mut doc = format!("{{\"type\":\"catalog.update\",\"seq\":{seq},\"items\":[");
    let mut rng = 0x9E37_79B9_u32;
    let mut item = String::new();
    for n in 0.. {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        item.clear();
        push_item(&mut item, rng);
        let sep = usize::from(n > 0);
        if n > 0 && doc.len() + sep + item.len() + 2 > size {
            break;
        }
        if n > 0 {
            doc.push(',');
        }
        doc.push_str(&item);
    }
    doc.push_str("]}");
    doc
}

/// One item, its fields drawn from the bits of `r`.
fn push_item(out: &mut String, r: u32) {
    use std::fmt::Write as _;
    let pick = |shift: u32, n: usize| (r >> shift) as usize % n;
    let _ = write!(
        out,
        "{{\"id\":{},\"name\":\"{}\",\"category\":\"{}\",\"price\":{{\"amount\":{}.{:02},\
         \"currency\":\"EUR\"}},\"in_stock\":{},\"tags\":[\"{}\",\"{}\"]}}",
        10_000 + r % 900,
        NAMES[pick(8, NAMES.len())],
        CATEGORIES[pick(14, CATEGORIES.len())],
        1 + (r >> 12) % 100,
        CENTS[pick(20, CENTS.len())],
        (r >> 3) % 4 != 0,
        TAGS[pick(16, TAGS.len())],
        TAGS[pick(24, TAGS.len())],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_valid_json_near_their_size_and_repeatable() {
        for size in [1, 200, 1024, 4096, 60_000] {
            let doc = json_doc(size, 7);
            let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
            assert_eq!(v["seq"], 7);
            let items = v["items"].as_array().unwrap();
            assert!(!items.is_empty());
            assert!(items[0]["price"]["amount"].is_f64());
            if size >= 200 {
                assert!(
                    doc.len() <= size && doc.len() + 200 > size,
                    "{size}: {}",
                    doc.len()
                );
            }
            assert_eq!(json_doc(size, 7), doc);
        }
        // Only seq differs from one document to the next.
        let (a, b) = (json_doc(1024, 1), json_doc(1024, 2));
        assert_eq!(a.replacen("\"seq\":1", "\"seq\":2", 1), b);
    }

    #[test]
    fn a_kilobyte_deflates_about_three_times() {
        let doc = json_doc(1024, 1);
        let z = miniz_oxide::deflate::compress_to_vec(doc.as_bytes(), 6);
        let ratio = doc.len() as f64 / z.len() as f64;
        assert!((2.5..4.5).contains(&ratio), "{ratio}");
    }
}
