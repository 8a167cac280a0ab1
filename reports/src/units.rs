//! One unit style for every figure a person reads, on the console and in reports: durations in
//! the largest unit that keeps them above 1 (`1.49 s`, `26.8 ms`, `84 µs`) with three
//! significant digits, rates per second, shares as percentages.

/// A duration given in µs: `1.49 s`, `26.8 ms`, `84 µs`, `350 ns` (a cost per neighbor),
/// `0 µs`.
pub fn duration_us(us: f64) -> String {
    let a = us.abs();
    let (v, unit) = if a >= 1e6 {
        (us / 1e6, "s")
    } else if a >= 1e3 {
        (us / 1e3, "ms")
    } else if a >= 1.0 || a == 0.0 {
        (us, "µs")
    } else {
        (us * 1e3, "ns")
    };
    format!("{} {unit}", sig3(v))
}

/// A rate: `84/s`, `1.5/s`, `12,000/s`.
pub fn per_s(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{}/s", thousands(v.round() as i64))
    } else {
        format!("{}/s", sig3(v))
    }
}

/// A fraction as a percentage with enough digits to tell small shares apart: `0 %`,
/// `0.05 %`, `12.5 %`, `100 %`.
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else {
        format!("{} %", sig3(p))
    }
}

/// A size in bytes, in decimal units: `220 B`, `14.2 KB`, `141 MB`, `1.4 GB`.
pub fn bytes(b: f64) -> String {
    let (v, unit) = match b.abs() {
        a if a >= 1e9 => (b / 1e9, "GB"),
        a if a >= 1e6 => (b / 1e6, "MB"),
        a if a >= 1e3 => (b / 1e3, "KB"),
        _ => (b, "B"),
    };
    format!("{} {unit}", sig3(v))
}

/// A count with thousands separators: `1,200,000`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Three significant digits without trailing zeros: 1.49, 26.8, 84, 0.05.
fn sig3(v: f64) -> String {
    let a = v.abs();
    let decimals = if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // 0.0123 → 4 decimals.
        (2 - a.log10().floor() as i32).clamp(0, 9) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn bytes_pick_their_unit() {
        assert_eq!(bytes(220.0), "220 B");
        assert_eq!(bytes(14_164.0), "14.2 KB");
        assert_eq!(bytes(141_466_000.0), "141 MB");
        assert_eq!(bytes(1_400_000_000.0), "1.4 GB");
    }
    use super::*;

    #[test]
    fn durations_pick_their_unit_and_three_digits() {
        assert_eq!(duration_us(1_490_000.0), "1.49 s");
        assert_eq!(duration_us(26_800.0), "26.8 ms");
        assert_eq!(duration_us(84.0), "84 µs");
        assert_eq!(duration_us(0.0), "0 µs");
        assert_eq!(duration_us(16_500.0), "16.5 ms");
        assert_eq!(duration_us(1_000.0), "1 ms");
        assert_eq!(duration_us(123_456.0), "123 ms");
    }

    #[test]
    fn rates_counts_and_percentages_read_plainly() {
        assert_eq!(per_s(84.4), "84.4/s");
        assert_eq!(per_s(155.0), "155/s");
        assert_eq!(per_s(12_345.0), "12,345/s");
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(0.0005), "0.05 %");
        assert_eq!(percent(0.808), "80.8 %");
        assert_eq!(percent(1.0), "100 %");
        assert_eq!(thousands(1_200_000), "1,200,000");
    }
}
