//! Progress of a job on the command line, on standard error: one line redrawn in place on a
//! terminal, plain lines at each phase change and every 10 s otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Progress, ProgressView};
pub use crate::human::bytes as human_bytes;

fn line(view: &ProgressView) -> String {
    let mut out = format!("{:<12}", view.phase);
    match view.bytes.total {
        Some(total) if total > 0 => {
            let percent = view.bytes.done as f64 * 100.0 / total as f64;
            out += &format!(
                "{} / {} ({percent:.0} %)",
                human_bytes(view.bytes.done),
                human_bytes(total)
            );
        }
        _ if view.bytes.done > 0 => out += &human_bytes(view.bytes.done),
        _ => {}
    }
    match view.objects.total {
        Some(total) => out += &format!("  {}/{total} objects", view.objects.done),
        None if view.objects.done > 0 => out += &format!("  {} objects", view.objects.done),
        None => {}
    }
    if let Some(rate) = view.bytes_per_second.filter(|r| *r > 0) {
        out += &format!("  {}/s", human_bytes(rate));
    }
    if let Some(eta) = view.eta_seconds {
        out += &format!("  {}:{:02} left", eta / 60, eta % 60);
    }
    out
}

/// Shows `progress` until the returned handle is dropped or aborted.
pub fn spawn(progress: Arc<Progress>) -> ProgressLine {
    let terminal = std::io::stderr().is_terminal();
    let task = tokio::spawn(async move {
        let mut last_phase = "";
        let mut last_print = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let view = progress.view();
            let mut err = std::io::stderr().lock();
            if terminal {
                let _ = write!(err, "\r\x1b[2K{}", line(&view));
            } else if view.phase != last_phase || last_print.elapsed() >= Duration::from_secs(10) {
                let _ = writeln!(err, "{}", line(&view));
                last_phase = view.phase;
                last_print = Instant::now();
            }
            let _ = err.flush();
        }
    });
    ProgressLine { task, terminal }
}

/// The running display; stops (and ends the line) when dropped.
#[derive(Debug)]
pub struct ProgressLine {
    task: tokio::task::JoinHandle<()>,
    terminal: bool,
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.task.abort();
        if self.terminal {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_is_known() {
        assert_eq!(human_bytes(17), "17 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        let p = Progress::default();
        p.set_phase("copy");
        p.set_totals(4, 2048);
        p.add_bytes(1024);
        p.add_object();
        let text = line(&p.view());
        assert!(text.starts_with("copy"), "{text}");
        assert!(text.contains("1.0 KiB / 2.0 KiB (50 %)"), "{text}");
        assert!(text.contains("1/4 objects"), "{text}");
    }
}
