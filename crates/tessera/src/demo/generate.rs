//! Deterministic synthetic data for the artgo mesh's source datasets: the same seed and scale
//! always give the same rows. Derived datasets are computed from these by SQL (see `mod.rs`).
//!
//! Some rows are bad on purpose, so the demo shows what contracts catch: engagement events with
//! a negative dwell time or an unknown event type (quarantined at ingest), bot traffic in
//! `events_raw` (filtered out of `events_clean`), and one sale whose `prev_hash` does not match
//! the previous sale's hash (a broken provenance chain, for a `sql` quality rule).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Builder, Int32Array, Int64Array, ListBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use sha2::{Digest, Sha256};

/// The last instant of the synthetic data: data is deterministic, so it is not "now".
pub fn data_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// How many rows of each source dataset a scale gives.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub artists: usize,
    pub users: usize,
    pub assets: usize,
    pub events: usize,
    pub sales: usize,
}

impl Sizes {
    pub fn at(scale: f64) -> Self {
        let n = |base: f64, min: usize| ((base * scale).round() as usize).max(min);
        Sizes {
            artists: n(400.0, 10),
            users: n(5_000.0, 50),
            assets: n(3_000.0, 30),
            events: n(100_000.0, 500),
            sales: n(5_000.0, 20),
        }
    }
}

fn user_id(n: usize) -> String {
    format!("U{:08}", n + 1)
}

fn asset_id(n: usize) -> String {
    format!("A{:08}", n + 1)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn utc_micros(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

/// The source data of the artgo mesh.
pub struct Generated {
    pub assets: RecordBatch,
    pub events_raw: RecordBatch,
    pub sales: RecordBatch,
}

pub fn generate(seed: u64, sizes: Sizes) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (assets, artist_of, uploaded) = assets(&mut rng, sizes);
    let events_raw = events(&mut rng, sizes, &uploaded);
    let sales = sales(&mut rng, sizes, &artist_of, &uploaded);
    Generated {
        assets,
        events_raw,
        sales,
    }
}

const ADJECTIVES: &[&str] = &[
    "Quiet", "Burning", "Blue", "Hidden", "Electric", "Fading", "Golden", "Silent", "Broken",
    "Endless", "Velvet", "Paper", "Northern", "Liquid", "Hollow", "Crimson",
];
const NOUNS: &[&str] = &[
    "Harbour",
    "Garden",
    "Machine",
    "Portrait",
    "Horizon",
    "Cathedral",
    "Orchard",
    "Signal",
    "Mirror",
    "Forest",
    "Tide",
    "Study",
    "Skyline",
    "Memory",
    "Lantern",
    "Field",
];
const FORMATS: &[(&str, u32)] = &[
    ("png", 35),
    ("jpeg", 30),
    ("webp", 15),
    ("tiff", 8),
    ("gif", 7),
    ("svg", 5),
];

fn weighted<'a>(rng: &mut ChaCha8Rng, choices: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for (value, weight) in choices {
        if pick < *weight {
            return value;
        }
        pick -= weight;
    }
    choices[0].0
}

/// Assets uploaded over the year before [`data_end`], by artists with a few prolific ones.
fn assets(rng: &mut ChaCha8Rng, sizes: Sizes) -> (RecordBatch, Vec<usize>, Vec<DateTime<Utc>>) {
    let end = data_end();
    let year_seconds = 365 * 24 * 3600;
    let mut ids = Vec::new();
    let mut artists = Vec::new();
    let mut artist_of = Vec::new();
    let mut titles = Vec::new();
    let mut formats = Vec::new();
    let mut widths = Vec::new();
    let mut heights = Vec::new();
    let mut bytes = Vec::new();
    let mut colors = ListBuilder::new(StringBuilder::new());
    let mut uploaded = Vec::new();
    for i in 0..sizes.assets {
        // Skewed: low artist numbers upload more.
        let artist = ((rng.r#gen::<f64>().powi(2)) * sizes.artists as f64) as usize;
        let format = weighted(rng, FORMATS);
        let (w, h) = match format {
            "svg" => (1024, 1024),
            _ => (rng.gen_range(600..6000), rng.gen_range(600..6000)),
        };
        let per_pixel = match format {
            "tiff" => 3.0,
            "png" => 1.6,
            "gif" => 0.8,
            "svg" => 0.05,
            _ => 0.4,
        };
        let t = end - Duration::seconds(rng.gen_range(0..year_seconds));
        ids.push(asset_id(i));
        artists.push(user_id(artist));
        artist_of.push(artist);
        titles.push(format!(
            "{} {}",
            ADJECTIVES.choose(rng).expect("not empty"),
            NOUNS.choose(rng).expect("not empty")
        ));
        formats.push(format);
        widths.push(w);
        heights.push(h);
        bytes.push((w as f64 * h as f64 * per_pixel) as i64);
        for _ in 0..rng.gen_range(1..=5) {
            colors
                .values()
                .append_value(format!("#{:06x}", rng.gen_range(0..0x1000000)));
        }
        colors.append(true);
        uploaded.push(t);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("asset_id", DataType::Utf8, true),
        Field::new("artist_id", DataType::Utf8, true),
        Field::new("title", DataType::Utf8, true),
        Field::new("format", DataType::Utf8, true),
        Field::new("width", DataType::Int32, true),
        Field::new("height", DataType::Int32, true),
        Field::new("file_bytes", DataType::Int64, true),
        Field::new(
            "dominant_colors",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        ts_field("uploaded_at"),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(artists)),
            Arc::new(StringArray::from(titles)),
            Arc::new(StringArray::from(formats)),
            Arc::new(Int32Array::from(widths)),
            Arc::new(Int32Array::from(heights)),
            Arc::new(Int64Array::from(bytes)),
            Arc::new(colors.finish()),
            utc_micros(uploaded.iter().map(|t| micros(*t)).collect()),
        ],
    )
    .expect("columns match the schema");
    (batch, artist_of, uploaded)
}

const HUMAN_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/129.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/129.0 Mobile Safari/537.36",
    "artgo-ios/4.2.0 (iPhone15,2; iOS 17.5)",
    "artgo-android/4.1.3 (Pixel 8; Android 14)",
];
const BOT_AGENTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
    "python-requests/2.31.0 (crawler)",
];

/// Engagement over the 30 days before [`data_end`]: popular assets get most events; about 6% of
/// events come from bots in bursts; about 0.3% are malformed.
fn events(rng: &mut ChaCha8Rng, sizes: Sizes, uploaded: &[DateTime<Utc>]) -> RecordBatch {
    let end = data_end();
    let window = 30 * 24 * 3600;
    let n = sizes.events;
    let mut event_ids = Vec::with_capacity(n);
    let mut types: Vec<&str> = Vec::with_capacity(n);
    let mut asset_ids = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut dwell = Vec::with_capacity(n);
    let mut agents = Vec::with_capacity(n);
    let mut ips = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let bot = rng.gen_bool(0.012);
        // A bot hits many assets in a burst from one address; a person looks at one.
        let burst = if bot {
            rng.gen_range(3..8).min(n - i)
        } else {
            1
        };
        let agent = if bot {
            *BOT_AGENTS.choose(rng).expect("not empty")
        } else {
            *HUMAN_AGENTS.choose(rng).expect("not empty")
        };
        let user = rng.gen_range(0..sizes.users);
        let ip = format!(
            "{}.{}.{}.{}",
            rng.gen_range(11..223),
            rng.gen_range(0..256),
            rng.gen_range(0..256),
            rng.gen_range(1..255)
        );
        let start = end - Duration::seconds(rng.gen_range(0..window));
        for b in 0..burst {
            let asset = ((rng.r#gen::<f64>().powi(3)) * sizes.assets as f64) as usize;
            let at = (start + Duration::milliseconds(b as i64 * 250)).max(uploaded[asset]);
            let kind = if bot {
                "view"
            } else {
                weighted(rng, &[("view", 80), ("like", 15), ("share", 5)])
            };
            let malformed = rng.gen_bool(0.003);
            let (kind, dwell_ms) = match (malformed, kind) {
                (true, _) if rng.gen_bool(0.5) => ("view", Some(-rng.gen_range(1..5000))),
                (true, _) => ("hover", None),
                (false, "view") if bot => ("view", Some(rng.gen_range(5..60))),
                (false, "view") => ("view", Some(rng.gen_range(300..90_000))),
                (false, other) => (other, None),
            };
            event_ids.push(format!("E{:010}", i + 1));
            types.push(kind);
            asset_ids.push(asset_id(asset));
            users.push(user_id(user));
            dwell.push(dwell_ms);
            agents.push(agent);
            ips.push(ip.clone());
            times.push(micros(at));
            i += 1;
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("asset_id", DataType::Utf8, true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("dwell_ms", DataType::Int64, true),
        Field::new("user_agent", DataType::Utf8, true),
        Field::new("ip", DataType::Utf8, true),
        ts_field("occurred_at"),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(event_ids)),
            Arc::new(StringArray::from(types)),
            Arc::new(StringArray::from(asset_ids)),
            Arc::new(StringArray::from(users)),
            Arc::new(Int64Array::from(dwell)),
            Arc::new(StringArray::from(agents)),
            Arc::new(StringArray::from(ips)),
            utc_micros(times),
        ],
    )
    .expect("columns match the schema")
}

const CURRENCIES: &[(&str, u32)] = &[("EUR", 45), ("USD", 40), ("GBP", 12), ("JPY", 3)];

/// The hash that chains a sale to the previous one.
pub fn sale_hash(prev_hash: &str, fields: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    for f in fields {
        hasher.update(b"|");
        hasher.update(f.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Sales in time order: the first sale of an asset is by its artist, later ones by the last
/// buyer; each row's hash covers the previous row's. One link, near the end, is broken.
fn sales(
    rng: &mut ChaCha8Rng,
    sizes: Sizes,
    artist_of: &[usize],
    uploaded: &[DateTime<Utc>],
) -> RecordBatch {
    let end = data_end();
    let n = sizes.sales;
    // Sale times: sorted random instants in the year before the end.
    let mut times: Vec<DateTime<Utc>> = (0..n)
        .map(|_| end - Duration::seconds(rng.gen_range(0..365 * 24 * 3600)))
        .collect();
    times.sort();
    let mut owner: Vec<usize> = artist_of.to_vec();
    let mut ids = Vec::with_capacity(n);
    let mut assets = Vec::with_capacity(n);
    let mut sellers = Vec::with_capacity(n);
    let mut buyers = Vec::with_capacity(n);
    let mut prices = Decimal128Builder::with_capacity(n);
    let mut currencies: Vec<&str> = Vec::with_capacity(n);
    let mut sold = Vec::with_capacity(n);
    let mut prev_hashes = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    let mut prev = "0".repeat(64);
    let mut last_sold = end - Duration::days(365);
    // Near the end, so that only the last of the demo's sales batches carries it.
    let broken = n - n / 20 - 1;
    for (i, t) in times.into_iter().enumerate() {
        // An asset already uploaded at the time of sale.
        let mut asset = ((rng.r#gen::<f64>().powi(2)) * sizes.assets as f64) as usize;
        for _ in 0..20 {
            if uploaded[asset] <= t {
                break;
            }
            asset = rng.gen_range(0..sizes.assets);
        }
        // Sales stay in time order, so the chain can be followed by `sold_at`.
        let t = t.max(uploaded[asset] + Duration::hours(1)).max(last_sold);
        last_sold = t;
        let seller = owner[asset];
        let mut buyer = rng.gen_range(0..sizes.users);
        if buyer == seller {
            buyer = (buyer + 1) % sizes.users;
        }
        owner[asset] = buyer;
        let cents: i64 = (rng.r#gen::<f64>().powi(3) * 500_000.0) as i64 + 500;
        let currency = weighted(rng, CURRENCIES);
        let sale_id = format!("S{:08}", i + 1);
        let sold_at = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let price = format!("{}.{:02}", cents / 100, cents % 100);
        let prev_hash = if i == broken {
            // Tampering: this row claims a predecessor that never existed.
            sale_hash("tampered", &[&sale_id])
        } else {
            prev.clone()
        };
        let hash = sale_hash(
            &prev_hash,
            &[
                &sale_id,
                &asset_id(asset),
                &user_id(seller),
                &user_id(buyer),
                &price,
                currency,
                &sold_at,
            ],
        );
        ids.push(sale_id);
        assets.push(asset_id(asset));
        sellers.push(user_id(seller));
        buyers.push(user_id(buyer));
        prices.append_value(cents as i128);
        currencies.push(currency);
        sold.push(micros(t));
        prev_hashes.push(prev_hash);
        prev = hash.clone();
        hashes.push(hash);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("sale_id", DataType::Utf8, true),
        Field::new("asset_id", DataType::Utf8, true),
        Field::new("seller_id", DataType::Utf8, true),
        Field::new("buyer_id", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(12, 2), true),
        Field::new("currency", DataType::Utf8, true),
        ts_field("sold_at"),
        Field::new("prev_hash", DataType::Utf8, true),
        Field::new("hash", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(assets)),
            Arc::new(StringArray::from(sellers)),
            Arc::new(StringArray::from(buyers)),
            Arc::new(
                prices
                    .finish()
                    .with_precision_and_scale(12, 2)
                    .expect("valid decimal"),
            ),
            Arc::new(StringArray::from(currencies)),
            utc_micros(sold),
            Arc::new(StringArray::from(prev_hashes)),
            Arc::new(StringArray::from(hashes)),
        ],
    )
    .expect("columns match the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a = generate(7, Sizes::at(0.05));
        let b = generate(7, Sizes::at(0.05));
        assert_eq!(a.events_raw, b.events_raw);
        assert_eq!(a.sales, b.sales);
        let c = generate(8, Sizes::at(0.05));
        assert_ne!(a.events_raw, c.events_raw);
    }

    #[test]
    fn sizes_grow_with_scale() {
        let g = generate(1, Sizes::at(0.1));
        assert_eq!(g.assets.num_rows(), 300);
        assert_eq!(g.events_raw.num_rows(), 10_000);
        assert_eq!(g.sales.num_rows(), 500);
    }
}
