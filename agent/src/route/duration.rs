//! Istio duration strings: Go's `time.ParseDuration` syntax (`1s`, `500ms`,
//! `1.5s`, `1m30s`), limited as Istio validates them (>= 1ms, ms precision).

use std::time::Duration;

/// Parses a duration the way Istio accepts it.
pub fn parse(s: &str) -> Result<Duration, String> {
    let d = parse_go(s)
        .ok_or_else(|| format!("invalid duration {s:?} (examples: 1s, 500ms, 1.5s, 1m30s)"))?;
    if d < Duration::from_millis(1) {
        return Err(format!("duration {s:?} must be at least 1ms"));
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "duration {s:?}: only millisecond precision is supported"
        ));
    }
    Ok(d)
}

/// Go's grammar: one or more `<decimal><unit>`; units ns, us, µs, ms, s, m, h.
fn parse_go(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_nanos: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total_nanos += number * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_nanos(total_nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse;

    #[test]
    fn istio_durations() {
        let ok = [
            ("1s", Duration::from_secs(1)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.5s", Duration::from_millis(500)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("1ms", Duration::from_millis(1)),
        ];
        for (s, want) in ok {
            assert_eq!(parse(s), Ok(want), "{s}");
        }
        for bad in ["", "1", "s", "1sec", "-1s", "0s", "500us", "1.0001s", "1 s"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
