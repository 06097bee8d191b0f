//! weir's code-mode runtime: a JavaScript engine (Boa) as a component of
//! weir's world, whose input is a script a model wrote.
//!
//! The script is the body of an async function: it may `await`, and what
//! it `return`s is the answer (as JSON). Its tool calls do not leave one
//! by one: each call queues, and whenever the script has nothing left to
//! do but wait, the queued calls go to the host together as one
//! `call-tools` batch — so calls awaited together (`Promise.all`) run
//! concurrently on the host's sessions. `console.log` goes to stdout,
//! which the host captures (and keeps even when the run is stopped).
//!
//! The engine is set up in `wizer-initialize`, which the host runs once
//! before snapshotting the instance: each run starts from that snapshot,
//! a fresh instance with the engine ready.

mod driver;

wit_bindgen::generate!({
    path: "../wit",
    world: "weir:agent/code-runtime",
});

struct Runtime;

impl Guest for Runtime {
    fn wizer_initialize() {
        driver::initialize();
    }

    fn run(input: String) -> Result<String, String> {
        driver::run(&input)
    }
}

export!(Runtime);
