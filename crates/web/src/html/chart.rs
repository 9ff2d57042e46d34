//! Outcome charts drawn on the server as SVG text: no script, readable by a screen reader
//! (`role="img"` with a title and a description, a `<title>` on every point and marker), and
//! printable. Pure: plain data in, a string out; every piece of text is escaped here, so the
//! result can be placed in a page as it is (askama's `|safe`).
//!
//! One chart per instrument, since their scales differ (PHQ-9 0–27, GAD-7 0–21, PCL-5 0–80). The
//! PHQ-9 and GAD-7 charts show their severity bands behind the line (KAP-SPEC 7.1 [S34], 7.2
//! [S37]); the PCL-5 has none ("No empirically derived severity bands exist for the PCL-5 … do
//! not display mild/moderate/severe labels", 7.3 [S38]). Colours are never the only cue: each
//! band is labelled and each point carries its date and score.

use std::fmt::Write;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kapstone_domain::UtcTs;
use kapstone_domain::outcomes::Score;

/// A severity band: totals `from..=to`, labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    pub from: u8,
    pub to: u8,
    pub label: &'static str,
}

/// PHQ-9 bands (KAP-SPEC 7.1: 0–4 minimal/none, 5–9 mild, 10–14 moderate, 15–19 moderately
/// severe, 20–27 severe [S34]).
pub const PHQ9_BANDS: [Band; 5] = [
    Band { from: 0, to: 4, label: "Minimal" },
    Band { from: 5, to: 9, label: "Mild" },
    Band { from: 10, to: 14, label: "Moderate" },
    Band { from: 15, to: 19, label: "Moderately severe" },
    Band { from: 20, to: 27, label: "Severe" },
];

/// GAD-7 bands (KAP-SPEC 7.2: 0–4 minimal, 5–9 mild, 10–14 moderate, 15–21 severe [S37]).
pub const GAD7_BANDS: [Band; 4] = [
    Band { from: 0, to: 4, label: "Minimal" },
    Band { from: 5, to: 9, label: "Mild" },
    Band { from: 10, to: 14, label: "Moderate" },
    Band { from: 15, to: 21, label: "Severe" },
];

/// A vertical marker: a dosing session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub at: UtcTs,
    pub label: String,
}

/// What to draw.
#[derive(Debug, Clone, Copy)]
pub struct LineChart<'a> {
    /// Unique on the page: the title and description are referenced by id.
    pub id: &'a str,
    pub title: &'a str,
    /// One or two sentences for a screen reader, e.g. "Baseline 20, latest 9: a response."
    pub description: &'a str,
    /// The vertical axis, e.g. "PHQ-9 total (0–27)".
    pub y_label: &'a str,
    pub y_max: u8,
    pub scores: &'a [Score],
    pub markers: &'a [Marker],
    /// Empty for an instrument without bands (PCL-5).
    pub bands: &'a [Band],
    /// Dates are written in the clinic's zone.
    pub zone: &'a TimeZone,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 120.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;
const DAY_MICROS: i64 = 86_400_000_000;
/// Light fills, from the lowest band up; the label, not the colour, says which band it is.
const BAND_FILLS: [&str; 5] = ["#eef6ee", "#f6f6e6", "#fbf0e0", "#fbe6dc", "#f6dcdc"];

/// Escapes text for SVG (XML) content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn date(ts: UtcTs, zone: &TimeZone) -> String {
    Timestamp::from_microsecond(ts.unix_micros())
        .map(|t| t.to_zoned(zone.clone()).date().to_string())
        .unwrap_or_else(|_| ts.rfc3339().chars().take(10).collect())
}

/// A coordinate to one decimal place (`12.3`, `-0.5`), rounded half away from zero. Written with
/// integers: `{:.1}` on a float takes the exact decimal path, a measurable share of a chart view's
/// time for the sixty-odd numbers of a chart.
struct Px(f64);

impl std::fmt::Display for Px {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Coordinates are within a few thousand pixels; a non-finite one (never drawn) shows as 0.
        let tenths = (self.0 * 10.0).round();
        let tenths = if tenths.is_finite() { tenths as i64 } else { 0 };
        let sign = if tenths < 0 { "-" } else { "" };
        let t = tenths.unsigned_abs();
        write!(f, "{sign}{}.{}", t / 10, t % 10)
    }
}

/// Draws the chart. An empty series still gives a chart (axes, bands and markers) that says no
/// score is recorded yet.
pub fn line_chart(c: &LineChart<'_>) -> String {
    let id = escape(c.id);
    let y_max = f64::from(c.y_max.max(1));
    let y_of = |v: u8| TOP + PLOT_H - f64::from(v.min(c.y_max)) / y_max * PLOT_H;
    let times = c.scores.iter().map(|s| s.at).chain(c.markers.iter().map(|m| m.at));
    let (t0, t1) = match (times.clone().min(), times.max()) {
        (Some(a), Some(b)) if b > a => (a.unix_micros(), b.unix_micros()),
        // One instant (or none): a day either side, so the point sits in the middle.
        (Some(a), _) => (a.unix_micros() - DAY_MICROS, a.unix_micros() + DAY_MICROS),
        (None, _) => (0, 1),
    };
    // i64 microseconds to f64 loses nothing that shows at this scale.
    let x_of = |t: UtcTs| LEFT + (t.unix_micros() - t0) as f64 / (t1 - t0) as f64 * PLOT_W;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" class="outcome-chart" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<title id="{id}-title">{}</title>"#, escape(c.title));
    let _ = write!(s, r#"<desc id="{id}-desc">{}</desc>"#, escape(c.description));

    // Severity bands, each from its lower edge to the next band's.
    s.push_str(r#"<g class="bands">"#);
    for (i, b) in c.bands.iter().enumerate() {
        let top = if b.to >= c.y_max { TOP } else { y_of(b.to.saturating_add(1)) };
        let bottom = y_of(b.from);
        let fill = BAND_FILLS[i.min(BAND_FILLS.len() - 1)];
        let _ = write!(
            s,
            r#"<rect class="band" x="{}" y="{}" width="{}" height="{}" fill="{fill}"/>"#,
            Px(LEFT),
            Px(top),
            Px(PLOT_W),
            Px(bottom - top)
        );
        let _ = write!(
            s,
            r##"<text class="band-label" x="{}" y="{}" fill="#444">{} ({}–{})</text>"##,
            Px(LEFT + PLOT_W + 6.0),
            Px((top + bottom) / 2.0 + 4.0),
            escape(b.label),
            b.from,
            b.to
        );
    }
    s.push_str("</g>");

    // Axes, ticks at 0, each band's lower edge and the maximum, the first and last date.
    let x_axis_y = TOP + PLOT_H;
    let (left, top, right, bottom) = (Px(LEFT), Px(TOP), Px(LEFT + PLOT_W), Px(x_axis_y));
    let _ = write!(
        s,
        r##"<g class="axes" stroke="#333"><line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/><line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/></g>"##
    );
    let mut ticks: Vec<u8> = c.bands.iter().map(|b| b.from).chain([0, c.y_max]).collect();
    ticks.sort_unstable();
    ticks.dedup();
    s.push_str(r##"<g class="ticks" fill="#333">"##);
    for t in ticks {
        let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="end">{t}</text>"#, Px(LEFT - 6.0), Px(y_of(t) + 4.0));
    }
    if let (Some(first), Some(last)) = (c.scores.first(), c.scores.last()) {
        let y = Px(x_axis_y + 18.0);
        let _ = write!(s, r#"<text x="{}" y="{y}">{}</text>"#, Px(x_of(first.at)), date(first.at, c.zone));
        if last.at != first.at {
            let _ = write!(
                s,
                r#"<text x="{}" y="{y}" text-anchor="end">{}</text>"#,
                Px(x_of(last.at)),
                date(last.at, c.zone)
            );
        }
    }
    s.push_str("</g>");
    let _ = write!(
        s,
        r##"<text class="axis-label" x="{}" y="{}" text-anchor="middle" fill="#333">Date</text>"##,
        Px(LEFT + PLOT_W / 2.0),
        Px(HEIGHT - 8.0)
    );
    let (lx, ly) = (Px(14.0), Px(TOP + PLOT_H / 2.0));
    let _ = write!(
        s,
        r##"<text class="axis-label" x="{lx}" y="{ly}" text-anchor="middle" fill="#333" transform="rotate(-90 {lx} {ly})">{}</text>"##,
        escape(c.y_label)
    );

    // Dosing sessions as dashed vertical lines.
    s.push_str(r#"<g class="dosing">"#);
    for m in c.markers {
        let x = Px(x_of(m.at));
        let _ = write!(
            s,
            r##"<line class="dosing-marker" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#6a4c93" stroke-width="1.5" stroke-dasharray="4 3"><title>{} ({})</title></line>"##,
            escape(&m.label),
            date(m.at, c.zone)
        );
    }
    s.push_str("</g>");

    if c.scores.is_empty() {
        let _ = write!(
            s,
            r##"<text class="empty" x="{}" y="{}" text-anchor="middle" fill="#333">No scores recorded yet</text>"##,
            Px(LEFT + PLOT_W / 2.0),
            Px(TOP + PLOT_H / 2.0)
        );
    } else {
        if c.scores.len() > 1 {
            let points: Vec<String> =
                c.scores.iter().map(|p| format!("{},{}", Px(x_of(p.at)), Px(y_of(p.total)))).collect();
            let _ = write!(
                s,
                r##"<polyline class="series" points="{}" fill="none" stroke="#1f4e79" stroke-width="2"/>"##,
                points.join(" ")
            );
        }
        s.push_str(r##"<g class="points" fill="#1f4e79">"##);
        for p in c.scores {
            let _ = write!(
                s,
                r#"<circle cx="{}" cy="{}" r="4"><title>{}: {}</title></circle>"#,
                Px(x_of(p.at)),
                Px(y_of(p.total)),
                date(p.at, c.zone),
                p.total
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: i64) -> UtcTs {
        UtcTs::from_unix_micros(1_767_225_600_000_000 + d * DAY_MICROS)
    }

    fn chart<'a>(scores: &'a [Score], markers: &'a [Marker], bands: &'a [Band], zone: &'a TimeZone) -> LineChart<'a> {
        LineChart {
            id: "phq9",
            title: "PHQ-9 over time",
            description: "Baseline 20, latest 9.",
            y_label: "PHQ-9 total (0–27)",
            y_max: 27,
            scores,
            markers,
            bands,
            zone,
        }
    }

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    /// `Px` writes what `{:.1}` writes, away from the halfway cases (where it rounds away from
    /// zero and `{:.1}` to even: a twentieth of a pixel) and a negative zero.
    #[test]
    fn coordinates_are_written_as_with_one_decimal() {
        for i in -40_000..40_000 {
            let v = f64::from(i) * 0.0137;
            let tenths = v * 10.0;
            if (tenths.fract().abs() - 0.5).abs() < 1e-6 || (v < 0.0 && tenths > -0.5) {
                continue;
            }
            assert_eq!(Px(v).to_string(), format!("{v:.1}"), "{v}");
        }
        assert_eq!(Px(0.25).to_string(), "0.3");
        assert_eq!(Px(-0.25).to_string(), "-0.3");
        assert_eq!(Px(-0.04).to_string(), "0.0");
        assert_eq!(Px(420.0).to_string(), "420.0");
        assert_eq!(Px(f64::NAN).to_string(), "0.0");
    }

    #[test]
    fn every_score_is_a_point_on_one_line_with_its_date_and_total() {
        let zone = TimeZone::UTC;
        let scores =
            [Score { at: day(0), total: 20 }, Score { at: day(14), total: 12 }, Score { at: day(28), total: 9 }];
        let svg = line_chart(&chart(&scores, &[], &PHQ9_BANDS, &zone));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert_eq!(count(&svg, "<circle"), 3);
        assert_eq!(count(&svg, "<polyline"), 1);
        let points = svg.split("points=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
        assert_eq!(points.split(' ').count(), 3);
        // First point at the left edge, last at the right edge of the plot.
        assert!(points.starts_with("56.0,"), "{points}");
        // 9 of 27 at the right edge (56 + 464): 16 + 256 − 9/27 × 256.
        assert!(points.ends_with("520.0,186.7"), "{points}");
        assert!(svg.contains("<title>2026-01-01: 20</title>"), "{svg}");
        assert!(svg.contains("<title>2026-01-29: 9</title>"));
        assert!(svg.contains(r#"role="img""#) && svg.contains(r#"aria-labelledby="phq9-title phq9-desc""#));
        assert!(svg.contains(r#"<title id="phq9-title">PHQ-9 over time</title>"#));
        assert!(svg.contains(r#"<desc id="phq9-desc">Baseline 20, latest 9.</desc>"#));
        assert!(!svg.contains("<script"), "no script");
    }

    #[test]
    fn scores_map_onto_the_vertical_scale() {
        let zone = TimeZone::UTC;
        let scores = [Score { at: day(0), total: 0 }, Score { at: day(1), total: 27 }, Score { at: day(2), total: 40 }];
        let svg = line_chart(&chart(&scores, &[], &[], &zone));
        let bottom = format!("cy=\"{:.1}\"", TOP + PLOT_H);
        let top = format!("cy=\"{TOP:.1}\"");
        assert!(svg.contains(&bottom), "0 sits on the axis");
        assert_eq!(count(&svg, &top), 2, "27 at the top, and 40 is clamped to it");
    }

    #[test]
    fn text_is_escaped() {
        let zone = TimeZone::UTC;
        let markers = [Marker { at: day(1), label: "Dosing <b>1</b> & \"more\"".into() }];
        let mut c = chart(&[], &markers, &[], &zone);
        c.title = "<script>alert('x')</script>";
        c.id = "a\"b";
        let svg = line_chart(&c);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(svg.contains("Dosing &lt;b&gt;1&lt;/b&gt; &amp; &quot;more&quot;"));
        assert!(svg.contains(r#"id="a&quot;b-title""#));
        assert_eq!(escape("a<&>\"'b"), "a&lt;&amp;&gt;&quot;&#39;b");
    }

    #[test]
    fn an_empty_series_still_draws_a_labelled_chart() {
        let zone = TimeZone::UTC;
        let svg = line_chart(&chart(&[], &[], &PHQ9_BANDS, &zone));
        assert_eq!((count(&svg, "<circle"), count(&svg, "<polyline")), (0, 0));
        assert!(svg.contains("No scores recorded yet"));
        assert!(svg.contains("phq9-title") && svg.contains("PHQ-9 total (0–27)"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn a_single_score_is_a_point_without_a_line() {
        let zone = TimeZone::UTC;
        let svg = line_chart(&chart(&[Score { at: day(3), total: 15 }], &[], &PHQ9_BANDS, &zone));
        assert_eq!((count(&svg, "<circle"), count(&svg, "<polyline")), (1, 0));
        assert!(svg.contains(&format!("cx=\"{:.1}\"", LEFT + PLOT_W / 2.0)), "centred");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn dosing_sessions_are_vertical_markers_with_their_dates() {
        let zone = TimeZone::get("America/New_York").unwrap_or(TimeZone::UTC);
        let scores = [Score { at: day(0), total: 20 }, Score { at: day(10), total: 10 }];
        // 02:00 UTC on 2026-01-04 is still 2026-01-03 in New York.
        let at = UtcTs::from_unix_micros(day(3).unix_micros() + 2 * 3_600_000_000);
        let markers = [Marker { at, label: "Dosing 1".into() }, Marker { at: day(7), label: "Dosing 2".into() }];
        let svg = line_chart(&chart(&scores, &markers, &PHQ9_BANDS, &zone));
        assert_eq!(count(&svg, r#"class="dosing-marker""#), 2);
        if zone != TimeZone::UTC {
            assert!(svg.contains("<title>Dosing 1 (2026-01-03)</title>"), "{svg}");
        }
    }

    #[test]
    fn phq9_shows_its_bands_and_pcl5_none() {
        let zone = TimeZone::UTC;
        let scores = [Score { at: day(0), total: 40 }, Score { at: day(9), total: 30 }];
        let svg = line_chart(&chart(&scores, &[], &PHQ9_BANDS, &zone));
        assert_eq!(count(&svg, r#"class="band""#), 5);
        for label in ["Minimal (0–4)", "Mild (5–9)", "Moderate (10–14)", "Moderately severe (15–19)", "Severe (20–27)"]
        {
            assert!(svg.contains(label), "{label}");
        }
        let mut pcl5 = chart(&scores, &[], &[], &zone);
        pcl5.y_max = 80;
        let svg = line_chart(&pcl5);
        assert_eq!(count(&svg, r#"class="band""#), 0, "no severity bands for the PCL-5 (7.3)");
        assert!(!svg.contains("Severe") && !svg.contains("Moderate"));
        assert_eq!(GAD7_BANDS.last().map(|b| b.to), Some(21));
    }
}
