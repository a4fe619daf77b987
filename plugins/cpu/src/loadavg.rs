//! Parsing `/proc/loadavg`: the 1, 5 and 15 minute load averages.

/// The load averages of `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

/// Parses `0.14 0.09 0.03 2/95 3626`; only the first three fields are used.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, String> {
    let mut fields = text.split_ascii_whitespace();
    let mut next = |what: &str| -> Result<f64, String> {
        let field = fields
            .next()
            .ok_or_else(|| format!("missing the {what} load average"))?;
        match field.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(format!(
                "the {what} load average is not a number: {field:?}"
            )),
        }
    };
    Ok(LoadAvg {
        load1: next("1 minute")?,
        load5: next("5 minute")?,
        load15: next("15 minute")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a Linux 6.18 VM.
    const SAMPLE: &str = "0.14 0.09 0.03 2/95 3626\n";

    #[test]
    fn parses_the_three_averages() {
        let l = parse_loadavg(SAMPLE).expect("parse");
        assert_eq!(
            l,
            LoadAvg {
                load1: 0.14,
                load5: 0.09,
                load15: 0.03
            }
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        let err = parse_loadavg("0.14 0.09").expect_err("short");
        assert!(err.contains("15 minute"), "{err}");
        let err = parse_loadavg("0.14 abc 0.03 1/2 3").expect_err("not a number");
        assert!(err.contains("5 minute") && err.contains("abc"), "{err}");
        assert!(parse_loadavg("NaN 0 0 1/2 3").is_err());
        assert!(parse_loadavg("").is_err());
    }
}
