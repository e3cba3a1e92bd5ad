//! Progress reporting: an indicatif bar per epoch on a terminal, plain periodic lines
//! otherwise (CI logs), and the per-epoch evaluation hook of the online probe.

use crate::train::{EpochRecord, Observer, OnlineProbe, TrainState};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Fills in an epoch's record (the held-out probe accuracy) at the epoch's end.
pub type EpochEval<'a> = Box<dyn FnMut(&mut EpochRecord, Option<&OnlineProbe>) -> crate::Result<()> + 'a>;

pub struct Progress<'a> {
    per_epoch: usize,
    epochs: usize,
    batch_size: usize,
    bar: Option<ProgressBar>,
    last_line: Instant,
    epoch_start: Instant,
    /// Fills in the held-out probe accuracy at each epoch end.
    pub on_epoch_eval: EpochEval<'a>,
}

impl<'a> Progress<'a> {
    pub fn new(per_epoch: usize, epochs: usize, batch_size: usize, on_epoch_eval: EpochEval<'a>) -> Self {
        Progress { per_epoch, epochs, batch_size, bar: None, last_line: Instant::now(), epoch_start: Instant::now(), on_epoch_eval }
    }
}

impl Observer for Progress<'_> {
    fn on_step(&mut self, s: &TrainState, loss: f64, lr: f64) {
        // `epoch_start` is when the epoch's first step began (construction, or the end of the
        // previous epoch's line), so the first step's own time counts.
        let in_epoch = s.batch;
        let ips = (in_epoch * self.batch_size) as f64 / self.epoch_start.elapsed().as_secs_f64().max(1e-9);
        if std::io::stdout().is_terminal() {
            let bar = self.bar.get_or_insert_with(|| {
                let b = ProgressBar::new(self.per_epoch as u64);
                b.set_style(
                    ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            bar.set_prefix(format!("{}/{}", s.epoch + 1, self.epochs));
            bar.set_position(in_epoch as u64);
            bar.set_message(format!("loss {loss:.4} lr {lr:.2e} {ips:.0} img/s"));
        } else if self.last_line.elapsed().as_secs_f64() >= 10.0 || in_epoch == self.per_epoch {
            self.last_line = Instant::now();
            println!(
                "epoch {}/{} step {} batch {in_epoch}/{} loss {loss:.4} lr {lr:.2e} {ips:.0} img/s",
                s.epoch + 1,
                self.epochs,
                s.step,
                self.per_epoch
            );
        }
    }

    fn on_epoch(&mut self, r: &mut EpochRecord, probe: Option<&OnlineProbe>) -> crate::Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        (self.on_epoch_eval)(r, probe)?;
        let probe = r.online_probe_acc.map_or(String::new(), |a| format!(", online probe {a:.3}"));
        let part = if r.partial { " (partial)" } else { "" };
        let own: String = r.method_metrics.iter().map(|(k, v)| format!(", {k} {v:.4}")).collect();
        println!("epoch {}{part} done: loss {:.4}{own}, {:.1} s, {:.0} img/s{probe}", r.epoch, r.loss, r.seconds, r.images_per_second);
        self.epoch_start = Instant::now();
        Ok(())
    }
}
