//! The timeline picture: for one seed, each observer's view of each member over virtual time, faults marked.
//!
//! One row per (observer, member) pair, grouped by observer; a row is a run of colored segments (alive green,
//! suspect amber, down red, unknown grey, observer not running black). Faults are vertical lines, labelled and
//! listed below the plot. Samples come from the engine's probe (every 100 virtual ms with `--timeline`).

use std::fmt::Write;

use shoal::core::membership::MemberState;

use crate::check::Observed;
use crate::event::Ms;

const UNKNOWN: u8 = 0;
const ALIVE: u8 = 1;
const SUSPECT: u8 = 2;
const DOWN: u8 = 3;
const NOT_RUNNING: u8 = 4;
const COLORS: [&str; 5] = ["#d0d0d0", "#3aa655", "#f0b030", "#d33a2c", "#202020"];

/// Samples of every view, and fault marks.
#[derive(Debug)]
pub struct Timeline {
    n: usize,
    samples: Vec<(Ms, Vec<u8>)>,
    marks: Vec<(Ms, String)>,
}

impl Timeline {
    pub fn new(n: usize) -> Timeline {
        Timeline { n, samples: Vec::new(), marks: Vec::new() }
    }

    pub fn mark(&mut self, at: Ms, label: String) {
        self.marks.push((at, label));
    }

    pub fn sample(&mut self, at: Ms, nodes: &[Observed]) {
        let mut row = vec![NOT_RUNNING; self.n * self.n];
        for (o, observer) in nodes.iter().enumerate() {
            let Some(live) = &observer.live else { continue };
            for (m, member) in nodes.iter().enumerate() {
                row[o * self.n + m] = match live.view.iter().find(|e| e.gossip_addr == member.addr) {
                    None => UNKNOWN,
                    Some(e) if e.state == MemberState::Alive => ALIVE,
                    Some(e) if e.state == MemberState::Suspect => SUSPECT,
                    Some(_) => DOWN,
                };
            }
        }
        self.samples.push((at, row));
    }

    /// The picture as an SVG document.
    pub fn svg(&self) -> String {
        let (left, top, width, row_h, gap) = (90.0, 30.0, 1100.0, 7.0, 6.0);
        let end = self.samples.last().map_or(1, |(at, _)| *at).max(1) as f64;
        let x = |at: Ms| left + width * (at as f64 / end);
        let rows = self.n * self.n;
        let plot_h = rows as f64 * row_h + self.n as f64 * gap;
        let height = top + plot_h + 40.0 + 14.0 * self.marks.len() as f64;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="9">"#,
            left + width + 20.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="4" y="14" font-size="12">membership views: alive green, suspect amber, down red, unknown grey, observer down black; virtual ms 0..{end}</text>"#
        );
        for o in 0..self.n {
            for m in 0..self.n {
                let y = top + (o * self.n + m) as f64 * row_h + o as f64 * gap;
                let _ = writeln!(svg, r#"<text x="4" y="{}">n{o} sees n{m}</text>"#, y + row_h - 1.0);
                let mut run_start = 0;
                for s in 1..=self.samples.len() {
                    let code = self.samples[run_start].1[o * self.n + m];
                    if s < self.samples.len() && self.samples[s].1[o * self.n + m] == code {
                        continue;
                    }
                    let from = if run_start == 0 { 0 } else { self.samples[run_start].0 };
                    let to = self.samples.get(s).map_or(self.samples[s - 1].0, |(at, _)| *at);
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{}" fill="{}"/>"#,
                        x(from),
                        (x(to) - x(from)).max(0.5),
                        row_h - 1.0,
                        COLORS[usize::from(code)]
                    );
                    run_start = s;
                }
            }
        }
        for (k, (at, label)) in self.marks.iter().enumerate() {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1:.1}" stroke="#6040c0" stroke-width="1"/><text x="{0:.1}" y="{2:.1}" fill="#6040c0">{3}</text>"##,
                x(*at),
                top + plot_h,
                top - 4.0,
                k + 1
            );
            let _ = writeln!(
                svg,
                r##"<text x="4" y="{:.1}" fill="#6040c0">{}: {at} ms {}</text>"##,
                top + plot_h + 24.0 + 14.0 * k as f64,
                k + 1,
                escape(label)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
