//! Parsing of Nagios plugin output: the status line, the long output and the performance
//! data (`'label'=value[UOM];[warn];[crit];[min];[max]`), as described in the Nagios plugin
//! development guidelines. Pure functions on text; nothing here runs a process.
//!
//! The parser never fails: malformed performance data items are skipped and counted.

/// A check's output, taken apart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckOutput {
    /// The first line up to the first `|`, trimmed.
    pub message: String,
    /// The lines after the first one that are not performance data, joined with `\n`.
    pub long_output: String,
    pub perfdata: Vec<PerfItem>,
    /// How many performance data items were malformed and left out.
    pub skipped: usize,
}

/// One performance data item.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfItem {
    /// The label as the check wrote it, with quotes removed and `''` unescaped.
    pub label: String,
    /// `None` when the check reported `U` (the value could not be determined).
    pub value: Option<f64>,
    /// Unit of measurement (`s`, `%`, `B`, `c`, ...), or empty.
    pub uom: String,
    /// Warning range, as text (`10`, `~:5`, `@10:20`).
    pub warn: Option<String>,
    /// Critical range, as text.
    pub crit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Takes a check's standard output apart.
///
/// Perfdata comes after a `|` on the first line and, Nagios 3 style, after a `|` on a later
/// line: from there on, every remaining line is perfdata too.
pub fn parse_output(text: &str) -> CheckOutput {
    // `lines` also strips the `\r` of CRLF line ends.
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let (message, mut perf_text) = match first.split_once('|') {
        Some((message, perf)) => (message, perf.to_owned()),
        None => (first, String::new()),
    };
    let mut long_lines = Vec::new();
    let mut in_perfdata = false;
    for line in lines {
        if in_perfdata {
            perf_text.push(' ');
            perf_text.push_str(line);
        } else if let Some((long, perf)) = line.split_once('|') {
            long_lines.push(long.trim_end());
            perf_text.push(' ');
            perf_text.push_str(perf);
            in_perfdata = true;
        } else {
            long_lines.push(line.trim_end());
        }
    }
    while long_lines.last().is_some_and(|line| line.is_empty()) {
        long_lines.pop();
    }
    let (perfdata, skipped) = parse_perfdata(&perf_text);
    CheckOutput {
        message: message.trim().to_owned(),
        long_output: long_lines.join("\n"),
        perfdata,
        skipped,
    }
}

/// Parses space-separated performance data items; returns them and the number of
/// malformed items that were skipped.
pub fn parse_perfdata(text: &str) -> (Vec<PerfItem>, usize) {
    let mut items = Vec::new();
    let mut skipped = 0;
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (item, after) = next_item(rest);
        match item {
            Some(item) => items.push(item),
            None => skipped += 1,
        }
        rest = after.trim_start();
    }
    (items, skipped)
}

/// Parses the item at the start of `text` (which starts with a non-space); returns it, or
/// `None` when it is malformed, and the text after it.
fn next_item(text: &str) -> (Option<PerfItem>, &str) {
    let parsed_label = if text.starts_with('\'') {
        quoted_label(text)
    } else {
        let end = text
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(text.len());
        Some((text[..end].to_owned(), &text[end..]))
    };
    // Without a `label=`, resynchronise at the next space after where this item started:
    // a stray quote must not swallow the items after it.
    let Some((label, data)) =
        parsed_label.and_then(|(label, rest)| Some((label, rest.strip_prefix('=')?)))
    else {
        return (None, skip_token(text));
    };
    let end = data.find(char::is_whitespace).unwrap_or(data.len());
    let item = if label.is_empty() {
        None
    } else {
        parse_data(label, &data[..end])
    };
    (item, &data[end..])
}

/// Reads a `'quoted label'` where `''` is a literal quote; returns the label and the text
/// after the closing quote, or `None` when the quote is not closed.
fn quoted_label(text: &str) -> Option<(String, &str)> {
    let mut label = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            label.push(c);
        } else if chars.next_if(|&(_, next)| next == '\'').is_some() {
            label.push('\'');
        } else {
            return Some((label, &text[i + 1..]));
        }
    }
    None
}

/// The text after the current whitespace-separated token.
fn skip_token(text: &str) -> &str {
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    &text[end..]
}

/// Parses `value[UOM];[warn];[crit];[min];[max]`.
fn parse_data(label: String, data: &str) -> Option<PerfItem> {
    let mut fields = data.split(';');
    let (value, uom) = parse_value(fields.next().unwrap_or(""))?;
    let mut text_field = || {
        fields
            .next()
            .filter(|field| !field.is_empty())
            .map(str::to_owned)
    };
    let warn = text_field();
    let crit = text_field();
    let mut number_field = || match text_field() {
        Some(text) => parse_number(&text).map(Some),
        None => Some(None),
    };
    let min = number_field()?;
    let max = number_field()?;
    // Trailing empty fields (`1;2;3;0;10;`) are harmless; more data is not.
    if fields.any(|field| !field.is_empty()) {
        return None;
    }
    Some(PerfItem {
        label,
        value,
        uom,
        warn,
        crit,
        min,
        max,
    })
}

/// Splits `12.5ms` into its number and unit; `U` (with or without a unit) is a known
/// unknown.
fn parse_value(text: &str) -> Option<(Option<f64>, String)> {
    if let Some(uom) = text.strip_prefix('U') {
        return is_uom(uom).then(|| (None, uom.to_owned()));
    }
    let end = number_prefix_len(text);
    let (number, uom) = text.split_at(end);
    if !is_uom(uom) {
        return None;
    }
    Some((Some(parse_number(number)?), uom.to_owned()))
}

/// A whole field that must be a finite decimal number.
fn parse_number(text: &str) -> Option<f64> {
    if text.is_empty() || number_prefix_len(text) != text.len() {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The length of the decimal number at the start of `text`
/// (`[+-]digits[.digits][e[+-]digits]`, at least one digit before the exponent), or 0.
fn number_prefix_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let digits_from = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let int_end = digits_from(i);
    let mut digits = int_end - i;
    i = int_end;
    if bytes.get(i) == Some(&b'.') {
        let frac_end = digits_from(i + 1);
        digits += frac_end - (i + 1);
        i = frac_end;
    }
    if digits == 0 {
        return 0;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits_from(j);
        if exp_end > j {
            i = exp_end;
        }
    }
    i
}

/// A unit may be anything that cannot be mistaken for part of a number or the syntax
/// around it, so `1,5` (a decimal comma) and `1.2.3` are not `1` with a unit.
fn is_uom(text: &str) -> bool {
    text.chars().all(|c| {
        !c.is_ascii_digit()
            && !c.is_whitespace()
            && !c.is_control()
            && !matches!(c, '.' | ',' | ';' | '=' | '+' | '-' | '\'' | '"' | '|')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(label: &str, value: Option<f64>, uom: &str) -> PerfItem {
        PerfItem {
            label: label.into(),
            value,
            uom: uom.into(),
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }

    fn full(
        label: &str,
        value: f64,
        uom: &str,
        warn: &str,
        crit: &str,
        min: Option<f64>,
        max: Option<f64>,
    ) -> PerfItem {
        PerfItem {
            warn: Some(warn.into()).filter(|w: &String| !w.is_empty()),
            crit: Some(crit.into()).filter(|c: &String| !c.is_empty()),
            min,
            max,
            ..item(label, Some(value), uom)
        }
    }

    #[test]
    fn simple_status_line_with_one_item() {
        let out = parse_output("PING OK - Packet loss = 0%, RTA = 0.80 ms|rta=0.80ms;100;500;0\n");
        assert_eq!(out.message, "PING OK - Packet loss = 0%, RTA = 0.80 ms");
        assert_eq!(out.long_output, "");
        assert_eq!(
            out.perfdata,
            [full("rta", 0.8, "ms", "100", "500", Some(0.0), None)]
        );
        assert_eq!(out.skipped, 0);
    }

    #[test]
    fn message_without_perfdata() {
        let out = parse_output("  OK: all fine  \n");
        assert_eq!(out.message, "OK: all fine");
        assert!(out.perfdata.is_empty());
        assert_eq!(out.skipped, 0);
    }

    #[test]
    fn multiple_items_as_check_load_writes_them() {
        let out = parse_output(
            "LOAD OK - total load average: 0.21, 0.11, 0.04|load1=0.210;5.000;10.000;0; \
             load5=0.110;4.000;8.000;0; load15=0.040;3.000;6.000;0; \n",
        );
        assert_eq!(
            out.message,
            "LOAD OK - total load average: 0.21, 0.11, 0.04"
        );
        assert_eq!(
            out.perfdata,
            [
                full("load1", 0.21, "", "5.000", "10.000", Some(0.0), None),
                full("load5", 0.11, "", "4.000", "8.000", Some(0.0), None),
                full("load15", 0.04, "", "3.000", "6.000", Some(0.0), None),
            ]
        );
        assert_eq!(out.skipped, 0);
    }

    #[test]
    fn units_ranges_and_numbers() {
        let (items, skipped) = parse_perfdata(
            "a=1s b=2ms c=3us d=99.5% e=10B f=1.5KB g=2MB h=3GB i=4TB j=12345c k=7widgets \
             l=1.5e3 m=-3 n=+2.5E-1 o=5. p=.5 q=3;~:10;@5:20;-10;1e2 r=1;;;; s=21°C",
        );
        assert_eq!(skipped, 0);
        let got: Vec<_> = items
            .iter()
            .map(|i| (i.label.as_str(), i.value, i.uom.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Some(1.0), "s"),
                ("b", Some(2.0), "ms"),
                ("c", Some(3.0), "us"),
                ("d", Some(99.5), "%"),
                ("e", Some(10.0), "B"),
                ("f", Some(1.5), "KB"),
                ("g", Some(2.0), "MB"),
                ("h", Some(3.0), "GB"),
                ("i", Some(4.0), "TB"),
                ("j", Some(12345.0), "c"),
                ("k", Some(7.0), "widgets"),
                ("l", Some(1500.0), ""),
                ("m", Some(-3.0), ""),
                ("n", Some(0.25), ""),
                ("o", Some(5.0), ""),
                ("p", Some(0.5), ""),
                ("q", Some(3.0), ""),
                ("r", Some(1.0), ""),
                ("s", Some(21.0), "°C"),
            ]
        );
        assert_eq!(
            items[16],
            full("q", 3.0, "", "~:10", "@5:20", Some(-10.0), Some(100.0))
        );
        assert_eq!(items[17], item("r", Some(1.0), ""));
    }

    #[test]
    fn quoted_labels_with_spaces_and_quotes() {
        let (items, skipped) =
            parse_perfdata("'/var/log size'=5MB;;;0;100 'it''s'=1 'a=b'=2 ''''=3 '=x'=4");
        assert_eq!(skipped, 0);
        let labels: Vec<_> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["/var/log size", "it's", "a=b", "'", "=x"]);
        assert_eq!(
            items[0],
            full("/var/log size", 5.0, "MB", "", "", Some(0.0), Some(100.0))
        );
    }

    #[test]
    fn unknown_values_are_kept_without_a_value() {
        let (items, skipped) = parse_perfdata("rta=U;100;500 'pl'=U% x=1");
        assert_eq!(skipped, 0);
        assert_eq!(
            items,
            [
                PerfItem {
                    warn: Some("100".into()),
                    crit: Some("500".into()),
                    ..item("rta", None, "")
                },
                item("pl", None, "%"),
                item("x", Some(1.0), ""),
            ]
        );
    }

    #[test]
    fn nagios3_multi_line_output() {
        let text = "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\r\n\
                    / 15272 MB (77%);\r\n\
                    /boot 68 MB (69%);\r\n\
                    /home 69357 MB (27%);\r\n\
                    /var/log 819 MB (84%); | /boot=68MB;88;93;0;98\r\n\
                    /home=69357MB;253404;253409;0;253414 \r\n\
                    /var/log=818MB;970;975;0;980\r\n";
        let out = parse_output(text);
        assert_eq!(out.message, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(
            out.long_output,
            "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);"
        );
        let labels: Vec<_> = out.perfdata.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home", "/var/log"]);
        assert_eq!(
            out.perfdata[3],
            full(
                "/var/log",
                818.0,
                "MB",
                "970",
                "975",
                Some(0.0),
                Some(980.0)
            )
        );
        assert_eq!(out.skipped, 0);
    }

    #[test]
    fn long_output_without_perfdata() {
        let out = parse_output("WARNING - 2 problems\nfirst\n\nsecond\n\n\n");
        assert_eq!(out.message, "WARNING - 2 problems");
        assert_eq!(out.long_output, "first\n\nsecond");
        assert!(out.perfdata.is_empty());
    }

    #[test]
    fn perfdata_only_on_a_later_line() {
        let out = parse_output("OK\nlong one\n| a=1\nb=2");
        assert_eq!(out.message, "OK");
        assert_eq!(out.long_output, "long one");
        assert_eq!(
            out.perfdata,
            [item("a", Some(1.0), ""), item("b", Some(2.0), "")]
        );
    }

    #[test]
    fn empty_and_blank_output() {
        assert_eq!(parse_output(""), CheckOutput::default());
        assert_eq!(parse_output("\n\r\n  \n"), CheckOutput::default());
        let out = parse_output("|");
        assert_eq!(out, CheckOutput::default());
        let out = parse_output("| a=1");
        assert_eq!(out.message, "");
        assert_eq!(out.perfdata, [item("a", Some(1.0), "")]);
    }

    #[test]
    fn malformed_items_are_skipped_and_counted() {
        let cases: &[(&str, usize)] = &[
            ("a=1,5", 1),
            ("a=1,5s", 1),
            ("a=", 1),
            ("a= 5", 2),
            ("=5", 1),
            ("''=5", 1),
            ("a", 1),
            ("a=x", 1),
            ("a=1.2.3", 1),
            ("a=inf", 1),
            ("a=nan", 1),
            ("a=1e999", 1),
            ("a=--1", 1),
            ("a=1;2;3;x", 1),
            ("a=1;2;3;0;y", 1),
            ("a=1;2;3;0;1;7", 1),
            ("'unclosed=1", 1),
            ("'a'b=1", 1),
            ("a=1 | b=2", 1),
            ("a=1s=2", 1),
        ];
        for (text, expected) in cases {
            let (items, skipped) = parse_perfdata(text);
            let good: Vec<_> = items.iter().map(|i| i.label.as_str()).collect();
            let expected_good: &[&str] = if text.starts_with("a=1 |") {
                &["a", "b"]
            } else {
                &[]
            };
            assert_eq!(good, expected_good, "{text}");
            assert_eq!(skipped, *expected, "{text}");
        }
    }

    #[test]
    fn good_items_survive_garbage_around_them() {
        let (items, skipped) = parse_perfdata("x=1 garbage 'open=2 y=2;;; ;;; z=3% =9 'q'=");
        let labels: Vec<_> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["x", "y", "z"]);
        assert_eq!(skipped, 5);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples = [
            "\u{0}|\u{0}=\u{0}",
            "ü=1ü ö'ö'=2 'ä''",
            "|||||",
            "a=1;;;;;;;;;;;;",
            "'",
            "''",
            "'''",
            "a=+",
            "a=-.",
            "a=.e5",
            "a=1e",
            "a=1e+",
        ];
        for text in samples {
            let _ = parse_output(text);
        }
        // A cheap fuzz: every prefix of a tricky line.
        let tricky = "OK |'la''b el'=1.5e3ms;~:10;@2:3;0;1e2 b=U c=1,5 ";
        for (i, _) in tricky.char_indices() {
            let _ = parse_output(&tricky[..i]);
        }
    }

    #[test]
    fn exponent_without_digits_is_a_unit() {
        let (items, skipped) = parse_perfdata("a=1e b=2E+ c=2e-1");
        assert_eq!(skipped, 1, "{items:?}");
        assert_eq!(items, [item("a", Some(1.0), "e"), item("c", Some(0.2), "")]);
    }
}
