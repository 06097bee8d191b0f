//! Pre-initialization: a component's setup run once, its state snapshotted
//! into a new component (wasmtime's Wizer). Every run of the result starts
//! where the setup ended — for the code-mode runtime, with its JavaScript
//! engine built and the prelude evaluated — so a run pays for none of it.

use wasmtime::component::{Component, Instance, Lift, Linker, WasmList};
use wasmtime::{Engine, Store};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::state::RunState;

/// The export the setup is: `wizer-initialize: func()`.
pub(crate) const INIT_EXPORT: &str = "wizer-initialize";

/// Runs `bytes`'s `wizer-initialize` in a store of `state` (whose gate
/// should refuse everything: setup makes no tool calls) and returns the
/// snapshot, a component without that export.
pub(crate) async fn preinitialize(
    engine: &Engine,
    linker: &Linker<RunState>,
    state: RunState,
    bytes: &[u8],
) -> wasmtime::Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    // Kept: the component's own export of it still refers to the core
    // function (calling it again is a no-op; weir never does).
    wizer.init_func(INIT_EXPORT).keep_init_func(true);
    let (cx, instrumented) = wizer.instrument_component(bytes)?;
    let component = Component::new(engine, &instrumented)?;
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // The engine interrupts on epochs: let setup yield at each and go on.
    store.epoch_deadline_async_yield_and_update(1);
    let instance = linker.instantiate_async(&mut store, &component).await?;
    let init = instance.get_typed_func::<(), ()>(&mut store, INIT_EXPORT)?;
    init.call_async(&mut store, ()).await?;
    wizer
        .snapshot_component(
            &cx,
            &mut Access {
                store: &mut store,
                instance,
            },
        )
        .await
}

/// How the snapshot reads the instance's state: through the accessor
/// functions the instrumentation exported.
struct Access<'a> {
    store: &'a mut Store<RunState>,
    instance: Instance,
}

impl Access<'_> {
    async fn call<R: Lift + Send + Sync + 'static, O>(
        &mut self,
        instance: &str,
        func: &str,
        read: impl FnOnce(&Store<RunState>, R) -> O,
    ) -> O {
        // The instrumentation added these exports; a failure here is a bug
        // of the instrumentation, not of the component.
        let found = self
            .instance
            .get_export_index(&mut *self.store, None, instance)
            .and_then(|i| {
                self.instance
                    .get_export_index(&mut *self.store, Some(&i), func)
            })
            .and_then(|f| {
                self.instance
                    .get_typed_func::<(), (R,)>(&mut *self.store, f)
                    .ok()
            });
        let Some(typed) = found else {
            panic!("the pre-initializer's accessor {instance}#{func} is missing");
        };
        match typed.call_async(&mut *self.store, ()).await {
            Ok((value,)) => read(self.store, value),
            Err(error) => {
                panic!("the pre-initializer's accessor {instance}#{func} failed: {error:#}")
            }
        }
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(store))
        })
        .await
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, v| v).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, v| v).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, v: f32| v.to_bits()).await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, v: f64| v.to_bits()).await
    }
}
