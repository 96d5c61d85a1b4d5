//! A log writer that batches lines: the data path appends to a buffer and a
//! flusher thread writes it out shortly after (as Envoy buffers its access
//! log), so a request costs no write system call of its own. Lines reach
//! the output within [`FLUSH_DELAY`]; at idle the flusher sleeps without
//! waking up.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
pub const FLUSH_DELAY: Duration = Duration::from_millis(5);
/// A buffer this full is written out at once, by the writer that filled it.
const HIGH_WATER: usize = 64 * 1024;

struct Shared<W> {
    buffer: Mutex<Vec<u8>>,
    pending: Condvar,
    out: Mutex<W>,
}

/// A [`MakeWriter`] whose lines are written to `W` in batches.
pub struct Batched<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
}

impl<W: Write + Send + 'static> Batched<W> {
    /// Starts the flusher thread for `out`.
    pub fn new(out: W) -> Self {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(HIGH_WATER)),
            pending: Condvar::new(),
            out: Mutex::new(out),
        });
        let flusher = shared.clone();
        std::thread::Builder::new()
            .name("egret-log".into())
            .spawn(move || flush_loop(&flusher))
            .expect("spawning the log flusher thread");
        Batched { shared }
    }

    /// Writes out everything buffered so far (e.g. before exiting).
    pub fn flush(&self) {
        drain(&self.shared);
    }

    /// A guard that flushes when dropped, whichever way the caller returns.
    pub fn flush_on_drop(self) -> FlushOnDrop<W> {
        FlushOnDrop(self)
    }
}

/// Flushes its [`Batched`] writer when dropped.
pub struct FlushOnDrop<W: Write + Send + 'static>(Batched<W>);

impl<W: Write + Send + 'static> Drop for FlushOnDrop<W> {
    fn drop(&mut self) {
        self.0.flush();
    }
}

impl<W: Write + Send + 'static> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Batched {
            shared: self.shared.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn flush_loop<W: Write>(shared: &Shared<W>) {
    loop {
        {
            let mut buffer = lock(&shared.buffer);
            while buffer.is_empty() {
                buffer = shared
                    .pending
                    .wait(buffer)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        // Let more lines join the batch.
        std::thread::sleep(FLUSH_DELAY);
        drain(shared);
    }
}

/// Moves the buffer out under its lock and writes it under the output's.
fn drain<W: Write>(shared: &Shared<W>) {
    let batch = std::mem::take(&mut *lock(&shared.buffer));
    if batch.is_empty() {
        return;
    }
    let mut out = lock(&shared.out);
    // Logging must not take the agent down; a failed write loses lines.
    let _ = out.write_all(&batch);
    let _ = out.flush();
}

/// One line being written.
pub struct LineWriter<'a, W: Write + Send + 'static> {
    shared: &'a Shared<W>,
}

impl<W: Write + Send + 'static> Write for LineWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let full = {
            let mut buffer = lock(&self.shared.buffer);
            let was_empty = buffer.is_empty();
            buffer.extend_from_slice(bytes);
            if was_empty {
                self.shared.pending.notify_one();
            }
            buffer.len() >= HIGH_WATER
        };
        if full {
            drain(self.shared);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for Batched<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_shortly_and_in_order() {
        let sink = Sink::default();
        let batched = Batched::new(sink.clone());
        for i in 0..100 {
            writeln!(batched.make_writer(), "line {i}").unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while lock(&sink.0).len() < 100 * 7 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let text = String::from_utf8(lock(&sink.0).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[99], "line 99");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_writer_itself() {
        let sink = Sink::default();
        let batched = Batched::new(sink.clone());
        let chunk = vec![b'x'; HIGH_WATER];
        batched.make_writer().write_all(&chunk).unwrap();
        assert_eq!(lock(&sink.0).len(), HIGH_WATER, "not written synchronously");
    }

    #[test]
    fn flush_writes_everything_now() {
        let sink = Sink::default();
        let batched = Batched::new(sink.clone());
        write!(batched.make_writer(), "last words").unwrap();
        batched.flush();
        assert_eq!(&*lock(&sink.0), b"last words");
    }
}
