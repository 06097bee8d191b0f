//! The engine's epoch clock: a thread that advances the epoch every
//! [`super::EPOCH_TICK`] while any run is alive, and sleeps (parked, no
//! wake-ups at all) while none is — an idle weir costs no CPU for it.
//!
//! Each tick makes a running guest yield (and spend a tick of its CPU
//! budget); a short tick keeps a spinning guest from holding a worker for
//! long, which is what other runs wait on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// The epoch thread and how many runs need it.
pub(crate) struct Ticker {
    active: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts the thread for `engine`, ticking every `tick` while awake.
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let active = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (active, stop) = (active.clone(), stop.clone());
            std::thread::Builder::new()
                .name("weir-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        if active.load(Ordering::Acquire) == 0 {
                            // An `awake` between the load and here leaves
                            // an unpark token: park returns at once.
                            std::thread::park();
                            continue;
                        }
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })?
        };
        Ok(Self {
            active,
            stop,
            thread: Some(thread),
        })
    }

    /// Keeps the clock running until the guard is dropped: one per run.
    pub fn awake(&self) -> Awake {
        if self.active.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(thread) = &self.thread
        {
            thread.thread().unpark();
        }
        Awake(self.active.clone())
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A run's hold on the epoch clock.
pub(crate) struct Awake(Arc<AtomicUsize>);

impl Drop for Awake {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest spinning while a run holds the clock is interrupted (the
    /// parked thread woke and ticked); the clock's count goes back to zero
    /// and the thread stops when the ticker is dropped.
    #[test]
    fn ticks_while_awake() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).expect("engine");
        let ticker = Ticker::start(engine.clone(), Duration::from_millis(1)).expect("ticker");
        // The epoch is not readable from outside: a store's deadline tells.
        let mut store = wasmtime::Store::new(&engine, ());
        store.set_epoch_deadline(1);
        // (module (func (export "spin") (loop (br 0))))
        let spin_module: &[u8] = &[
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type () -> ()
            0x03, 0x02, 0x01, 0x00, // one function of that type
            0x07, 0x08, 0x01, 0x04, b's', b'p', b'i', b'n', 0x00, 0x00, // export
            0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0
        ];
        let module = wasmtime::Module::new(&engine, spin_module).expect("module");
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instance");
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .expect("spin");
        let awake = ticker.awake();
        // Interrupted: the epoch passed the deadline.
        assert!(spin.call(&mut store, ()).is_err());
        drop(awake);
        assert_eq!(ticker.active.load(Ordering::Acquire), 0);
        drop(ticker);
    }
}
