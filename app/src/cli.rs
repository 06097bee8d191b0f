//! The `weir` command line: flags in, a [`Config`] built, the library
//! called, an exit code out. Ctrl-C and SIGTERM become a clean shutdown.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{ArgAction, Args, Parser, Subcommand};
use futures::future::join_all;

use weir_host::builtin;
use weir_host::code::CodeMode;
use weir_host::config::Config;
use weir_host::gateway::Caller;
use weir_host::plugins::PluginError;
use weir_host::recording;
use weir_host::runtime::Host;
use weir_host::serve::{self, Listen, ServeOptions};

const ABOUT: &str = "Run sandboxed WebAssembly agents against MCP servers, \
                     one persistent session per server.";

const LONG_ABOUT: &str = "\
weir runs agent plugins (WebAssembly components) in a sandbox. Their only way
out is an MCP tool call, which weir makes on the one session it keeps open to
each server: no agent can open a connection of its own, so none can flood a
server with them.

Without --config, weir offers its built-in server `builtin` (tools echo, add,
now, kv_set, kv_get). With a config file, the servers it lists are added, in
the `mcpServers` format MCP clients already use:

  {\"mcpServers\": {\"time\": {\"command\": \"uvx\", \"args\": [\"mcp-server-time\"]}}}

Examples:
  weir run hello.wasm --input world
  weir run fanout --plugins ./wasm --config servers.json --input-file job.json
  weir list --config servers.json
  weir serve --plugins ./wasm --http 127.0.0.1:7070
  weir doctor --config servers.json --plugins ./wasm
  weir stats --url http://127.0.0.1:7070 --watch";

#[derive(Debug, Parser)]
#[command(name = "weir", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output on stderr: -v info, -vv debug, -vvv trace. RUST_LOG,
    /// when set, overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent plugin once and print its answer on stdout.
    Run(RunArgs),
    /// List the plugins, the MCP servers and the tools each offers.
    List(CommonArgs),
    /// Serve the plugins as MCP tools, to any MCP client (stdio or HTTP).
    Serve(ServeArgs),
    /// Check every server and plugin of the config, and say what to fix.
    Doctor(DoctorArgs),
    /// Replay every recording in a directory and compare the outputs.
    Test(TestArgs),
    /// Make a new plugin (Rust, Python or TypeScript) that builds as it stands.
    New(NewArgs),
    /// Build a plugin (Rust, Python, JavaScript or TypeScript) into a checked component.
    Build(BuildArgs),
    /// Sessions, tool calls and plugin runs of a running `weir serve --http`.
    Stats(StatsArgs),
    /// Sign in to remote servers behind OAuth, see the sign-ins weir
    /// holds, sign out.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// What a plugin is before you trust it: world, imports, exports,
    /// manifest, the policy it would run under, sha256.
    Inspect(InspectArgs),
    /// Serve the built-in MCP server on stdio (weir starts this itself).
    #[command(name = "builtin-server", hide = true)]
    BuiltinServer,
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Sign in to SERVER now (in $BROWSER, or via a URL printed here);
    /// its tokens are kept for every later `weir run` and `weir serve`.
    Login {
        /// The remote server's name in the config.
        server: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Per remote server: signed in or not, as whom, scopes, expiry
    /// (never a token).
    Status(CommonArgs),
    /// Delete SERVER's tokens.
    Logout {
        /// The remote server's name in the config.
        server: String,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// MCP servers file (JSON with "mcpServers", and optionally "weir"
    /// settings). Without it only the built-in server is available.
    #[arg(short, long, env = "WEIR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of plugins (NAME.wasm), where PLUGIN names are looked up.
    /// Overrides `weir.plugins_dir` in the config.
    #[arg(short, long, env = "WEIR_PLUGINS", value_name = "DIR")]
    plugins: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A .wasm file, or the name of a plugin in the plugins directory.
    #[arg(required_unless_present = "code")]
    plugin: Option<String>,
    /// Run a JavaScript file (`-`: stdin) in code mode instead of a
    /// plugin: the body of an async function calling `tools.<server>.<tool>`,
    /// whose `return` value is printed as JSON (console output goes to
    /// stderr). It runs under `weir.code_mode`'s grant (and --allow).
    #[arg(long, value_name = "FILE.js", conflicts_with_all = ["plugin", "input", "input_file", "record", "replay"])]
    code: Option<PathBuf>,
    /// The plugin's input. Without --input or --input-file, stdin is read
    /// when it is not a terminal.
    #[arg(short, long, conflicts_with = "input_file")]
    input: Option<String>,
    /// Read the plugin's input from this file.
    #[arg(long, value_name = "FILE")]
    input_file: Option<PathBuf>,
    /// Write every tool call and its answer (and the run's input and
    /// output) to FILE, as JSON lines, for `--replay` and `weir test`.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    record: Option<PathBuf>,
    /// Answer the plugin's tool calls from a recording, with no server at
    /// all. The input is the recorded one unless --input/--input-file say
    /// otherwise.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Grants the plugin the tools matching SERVER/TOOL (`*` and `prefix*`
    /// allowed) for this run, on top of what the config grants.
    /// Repeatable: `--allow 'time/*' --allow 'fs/read_*'`.
    #[arg(long = "allow", value_name = "SERVER/TOOL")]
    allow: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct NewArgs {
    /// The plugin's name (lowercase letters, digits, '-', '_').
    name: String,
    /// Where to make its directory (default: here).
    #[arg(long, value_name = "DIR", default_value = ".")]
    path: PathBuf,
    /// The language to write it in.
    #[arg(long, value_enum, default_value_t)]
    lang: crate::scaffold::Lang,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// The plugin's directory (default: here): a Rust crate, or a Python
    /// (agent.py) or JavaScript/TypeScript (agent.js, agent.ts) agent.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Put the component (and its manifest) here instead of beside the
    /// manifest.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The engine a JavaScript/TypeScript agent runs on: SpiderMonkey
    /// (fuller, ~12 MB) or QuickJS (~1.6 MB, quicker to compile and load).
    #[arg(long, value_enum, default_value_t)]
    js_engine: crate::plugin_build::JsEngine,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// A directory of recordings (`*.replay.jsonl`); each is replayed and
    /// its output compared with the recorded one. The plugin is looked up
    /// as NAME.wasm beside them, else in the plugins directory.
    dir: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// A .wasm file, or the name of a plugin in the plugins directory.
    plugin: String,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Where `weir serve --http` (or `--metrics`) listens; give it once
    /// per replica of a fleet, and the figures are summed.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7070",
        value_name = "URL",
        num_args = 1
    )]
    url: Vec<String>,
    /// The bearer token, where `weir.auth.protect_status` guards
    /// `/metrics`.
    #[arg(
        long,
        env = "WEIR_STATS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Redraw every two seconds until Ctrl-C.
    #[arg(long, conflicts_with = "json")]
    watch: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// Print the findings as JSON, for machines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Serve MCP on stdin/stdout, for a client that starts weir itself
    /// (the default).
    #[arg(long, conflicts_with = "http")]
    stdio: bool,
    /// Serve streamable HTTP MCP at http://ADDR/mcp, with metrics at
    /// /metrics; ADDR defaults to 127.0.0.1:7070. Keep it a loopback
    /// address unless weir must be reachable from elsewhere (port 0 picks
    /// a free port).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:7070")]
    http: Option<std::net::SocketAddr>,
    /// Also serve /metrics on ADDR (useful with --stdio).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// A host name HTTP requests may be addressed to, besides localhost,
    /// 127.0.0.1 and ::1 (repeat for several). Requests naming any other
    /// host are refused, against DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Offer code mode's tools — search_tools, describe_tools and
    /// execute_code (the model writes a script, weir runs it sandboxed) —
    /// instead of needing plugins (served beside them, if --plugins is
    /// given). Same as `weir.code_mode.enabled` in the config.
    #[arg(long)]
    code_mode: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// Entry point of the `weir` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The command runs on a worker thread: waking a task on the runtime's
    // main thread costs an extra cross-thread hop on every tool call.
    let result = runtime.block_on(async {
        tokio::spawn(async move {
            match cli.command {
                Command::Run(args) => run(args).await,
                Command::List(args) => list(args).await,
                Command::Serve(args) => serve(args).await,
                Command::Doctor(args) => doctor(args).await,
                Command::Test(args) => test(args).await,
                Command::New(args) => {
                    let dir = crate::scaffold::new_plugin(&args.name, &args.path, args.lang)?;
                    println!("created {}", dir.display());
                    println!(
                        "next: cd {} && weir build && weir run {}.wasm --input you",
                        dir.display(),
                        args.name
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Command::Build(args) => build(args).await,
                Command::Stats(args) => stats(args).await,
                Command::Auth(AuthCommand::Login { server, common }) => {
                    crate::auth::login(&load_config(&common)?, &server).await
                }
                Command::Auth(AuthCommand::Status(common)) => {
                    crate::auth::status(&load_config(&common)?)
                }
                Command::Auth(AuthCommand::Logout { server, common }) => {
                    crate::auth::logout(&load_config(&common)?, &server)
                }
                Command::Inspect(args) => inspect(args).await,
                Command::BuiltinServer => builtin::serve_stdio()
                    .await
                    .map(|()| ExitCode::SUCCESS)
                    .context("built-in server"),
            }
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the command stopped unexpectedly: {e}")))
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", weir_host::redact::scrub(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8) {
    // rmcp logs the failures weir reports itself, in its own types' words:
    // quiet by default, there at -v for the cause chain.
    let default = match verbose {
        0 => "warn,rmcp=off",
        1 => "info,rmcp=warn",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal: a log piped to a file or
    // another program gets plain text it can grep.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(ScrubbedStderr)
        .try_init();
}

/// The log's writer: each event is formatted whole, then written to
/// stderr with every secret the config named masked (see
/// [`weir_host::redact`]) — whatever library wrote it, rmcp's own logs of a
/// URL among them.
struct ScrubbedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedEvent;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedEvent(Vec::new())
    }
}

/// One log event being written; masked and written out when dropped.
struct ScrubbedEvent(Vec<u8>);

impl std::io::Write for ScrubbedEvent {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedEvent {
    fn drop(&mut self) {
        let text = weir_host::redact::scrub(&String::from_utf8_lossy(&self.0));
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
    }
}

/// `server/tool` patterns from `what` (a flag, a recording), each checked.
fn parse_patterns(patterns: &[String], what: &str) -> Result<Vec<weir_host::policy::ToolPattern>> {
    patterns
        .iter()
        .map(|p| {
            weir_host::policy::ToolPattern::parse(p).map_err(|e| anyhow::anyhow!("{what}: {e}"))
        })
        .collect()
}

fn load_config(args: &CommonArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &args.plugins {
        config.plugins_dir = Some(dir.clone());
    }
    Ok(config)
}

/// The run's input, from `--input`, `--input-file` or stdin — read with a
/// bound: a plugin must hold its input in its memory, so input larger than
/// the memory limit could never run, and reading `/dev/zero` must stop.
fn read_input(args: &RunArgs, limit: usize) -> Result<String> {
    if let Some(input) = &args.input {
        return Ok(input.clone());
    }
    if let Some(path) = &args.input_file {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read input file {}", path.display()))?;
        return read_bounded(file, limit)
            .with_context(|| format!("cannot read input file {}", path.display()));
    }
    if std::io::stdin().is_terminal() {
        return Ok(String::new());
    }
    read_bounded(std::io::stdin().lock(), limit).context("cannot read input from stdin")
}

/// Reads text of at most `limit` bytes; more is an error naming the limit.
fn read_bounded(reader: impl Read, limit: usize) -> Result<String> {
    let mut bytes = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        anyhow::bail!(
            "the input is over {} MiB, the memory limit of a run (weir.memory_limit_mb): \
             a plugin could not hold it",
            limit >> 20
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "the input is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// A status line on stderr saying what weir is waiting on, redrawn with a
/// spinner — only when stderr is a terminal: piped output stays clean.
/// Cleared when dropped.
struct Progress(Option<tokio::task::JoinHandle<()>>);

impl Progress {
    fn show(message: String) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        Self(Some(tokio::spawn(async move {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            for frame in FRAMES.iter().cycle() {
                eprint!("\r\x1b[2K{frame} {message}");
                tokio::time::sleep(std::time::Duration::from_millis(120)).await;
            }
        })))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            eprint!("\r\x1b[2K");
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed
/// when this is called, not when it is first awaited: a signal that comes
/// while weir is still starting (after `weir serve` printed its start
/// line, say) is a clean shutdown too, not the default sudden death.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let received = |kind: SignalKind| {
        let installed = signal(kind);
        async move {
            match installed {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        }
    };
    let (interrupt, term) = (
        received(SignalKind::interrupt()),
        received(SignalKind::terminate()),
    );
    async move {
        tokio::select! {
            () = interrupt => {}
            () = term => {}
        }
    }
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    let plugin_spec = match (&args.code, &args.plugin) {
        (Some(path), _) => return run_code(&args, path).await,
        (None, Some(plugin)) => plugin.clone(),
        (None, None) => anyhow::bail!("give a plugin to run, or --code FILE.js"),
    };
    let mut config = load_config(&args.common)?;
    let replay = match &args.replay {
        Some(path) => Some(recording::read(path)?),
        None => None,
    };
    // A replay reaches no server: it runs under the grants and aliases its
    // recording was made under, with or without a config.
    if let Some([recording::Entry::Run { allow, aliases, .. }, ..]) = replay.as_deref() {
        if let Some(allow) = allow {
            config.allow_only(&parse_patterns(allow, "the recording's grants")?);
        }
        if !aliases.is_empty() {
            config.aliases = aliases.clone();
        }
    }
    config.allow_also(&parse_patterns(&args.allow, "--allow")?);
    let input = match replay.as_deref() {
        Some([recording::Entry::Run { input, .. }, ..])
            if args.input.is_none() && args.input_file.is_none() =>
        {
            input.clone()
        }
        _ => read_input(&args, config.limits.memory_bytes)?,
    };
    let host = Host::new(config, None)?;
    let loading = Progress::show(format!(
        "loading {plugin_spec} (compiled once, then cached)"
    ));
    let loaded = tokio::task::block_in_place(|| host.load(&plugin_spec));
    drop(loading);
    let plugin = match loaded {
        Ok(p) => p,
        Err(e) => {
            host.shutdown().await;
            return Err(e.into());
        }
    };
    let running = Progress::show(format!(
        "running {} (starting the servers it calls on first use)",
        plugin.name()
    ));
    let recorder = args.record.as_ref().map(|_| {
        Arc::new(recording::Recorder::new(
            host.gateway(),
            plugin.name(),
            &input,
            &plugin.policy().allow,
            host.config().aliases.clone(),
        ))
    });
    let gateway: Arc<dyn weir_host::gateway::ToolGateway> = match (&recorder, &replay) {
        (Some(recorder), _) => recorder.clone(),
        (None, Some(entries)) => Arc::new(recording::Replayer::new(
            entries,
            host.config().aliases.clone(),
        )),
        (None, None) => host.gateway(),
    };
    let outcome = tokio::select! {
        result = host.run_via(&plugin, &input, gateway, None) => Some(result),
        () = shutdown_signal() => None,
    };
    drop(running);
    if let (Some(recorder), Some(path), Some(result)) = (&recorder, &args.record, &outcome) {
        recorder.write(
            path,
            match result {
                Ok(output) => recording::RunOutcome::Output(output.clone()),
                Err(e) => recording::RunOutcome::Failed(e.to_string()),
            },
        )?;
    }
    // Always, whatever happened: no server process outlives weir.
    host.shutdown().await;
    Ok(match outcome {
        None => {
            eprintln!("weir: interrupted; every session is closed");
            ExitCode::from(130)
        }
        Some(Ok(output)) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            eprintln!("error: plugin `{}`: {e}", plugin.name());
            ExitCode::FAILURE
        }
    })
}

/// `weir run --code FILE.js`: one script, in code mode, against the
/// configured servers.
async fn run_code(args: &RunArgs, path: &Path) -> Result<ExitCode> {
    let mut config = load_config(&args.common)?;
    config.allow_also(&parse_patterns(&args.allow, "--allow")?);
    let limit = config.limits.memory_bytes;
    let script = if path == Path::new("-") {
        read_bounded(std::io::stdin().lock(), limit).context("cannot read the script from stdin")?
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read script {}", path.display()))?;
        read_bounded(file, limit)
            .with_context(|| format!("cannot read script {}", path.display()))?
    };
    let host = Host::new(config, None)?;
    let preparing = Progress::show("preparing code mode (once, then cached)".to_owned());
    let prepared = CodeMode::prepare(&host, crate::CODE_RUNTIME).await;
    drop(preparing);
    let code = match prepared {
        Ok(code) => code,
        Err(e) => {
            host.shutdown().await;
            return Err(e.into());
        }
    };
    let running = Progress::show(format!(
        "running {} (starting the servers it calls on first use)",
        path.display()
    ));
    let outcome = tokio::select! {
        execution = code.execute(&host, &script) => Some(execution),
        () = shutdown_signal() => None,
    };
    drop(running);
    host.shutdown().await;
    let Some(execution) = outcome else {
        eprintln!("weir: interrupted; every session is closed");
        return Ok(ExitCode::from(130));
    };
    eprint!("{}", execution.console_text());
    Ok(match execution.value_text() {
        Some(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        None => {
            if let Err(e) = &execution.result {
                eprintln!("error: {}: {e}", path.display());
            }
            ExitCode::FAILURE
        }
    })
}

async fn build(args: BuildArgs) -> Result<ExitCode> {
    let host = Host::new(Config::default(), None)?;
    let language = crate::plugin_build::language_of(&args.dir)?;
    let progress = Progress::show(format!(
        "building {} ({language}) into a component",
        args.dir.display()
    ));
    let built = tokio::task::block_in_place(|| {
        crate::plugin_build::build(
            &host,
            &args.dir,
            args.out.as_deref(),
            crate::plugin_build::BuildOptions {
                js_engine: args.js_engine,
            },
        )
    });
    drop(progress);
    host.shutdown().await;
    let built = built?;
    println!(
        "built {} ({}, {} bytes, sha256 {})",
        built.path.display(),
        built.language,
        built.bytes,
        built.sha256
    );
    Ok(ExitCode::SUCCESS)
}

async fn test(args: TestArgs) -> Result<ExitCode> {
    let config = load_config(&args.common)?;
    let host = Host::new(config, None)?;
    let mut recordings: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .with_context(|| format!("cannot read {}", args.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".replay.jsonl"))
        })
        .collect();
    recordings.sort();
    if recordings.is_empty() {
        host.shutdown().await;
        anyhow::bail!("no *.replay.jsonl recordings in {}", args.dir.display());
    }
    let mut failed = 0;
    for path in &recordings {
        let name = path.display().to_string();
        let verdict = replay_one(&host, &args.dir, path).await;
        match verdict {
            Ok(None) => println!("ok    {name}"),
            Ok(Some(diff)) => {
                failed += 1;
                println!("FAIL  {name}\n{diff}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {name}: {e:#}");
            }
        }
    }
    host.shutdown().await;
    println!(
        "\n{} recordings, {} passed, {failed} failed",
        recordings.len(),
        recordings.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Replays one recording; `Some(difference)` when the output differs.
async fn replay_one(
    host: &Host,
    dir: &std::path::Path,
    path: &std::path::Path,
) -> Result<Option<String>> {
    let entries = recording::read(path)?;
    let (plugin_name, input, allow) = match entries.first() {
        Some(recording::Entry::Run {
            plugin,
            input,
            allow,
            ..
        }) => (plugin.clone(), input.clone(), allow.clone()),
        _ => anyhow::bail!("no run line"),
    };
    let expected = entries
        .iter()
        .rev()
        .find_map(|e| match e {
            recording::Entry::Output { outcome } => Some(outcome.clone()),
            _ => None,
        })
        .context("the recording has no output line (was the run interrupted?)")?;
    let beside = dir.join(format!("{plugin_name}.wasm"));
    let spec = if beside.exists() {
        beside.display().to_string()
    } else {
        plugin_name
    };
    // Under the grants and aliases the recording was made under, when it
    // carries them, like `weir run --replay`.
    let plugin = match &allow {
        Some(allow) => {
            let allow = parse_patterns(allow, "the recording's grants")?;
            tokio::task::block_in_place(|| host.load_allowing(&spec, &allow))?
        }
        None => tokio::task::block_in_place(|| host.load(&spec))?,
    };
    let aliases = match entries.first() {
        Some(recording::Entry::Run { aliases, .. }) if !aliases.is_empty() => aliases.clone(),
        _ => host.config().aliases.clone(),
    };
    let replayer = Arc::new(recording::Replayer::new(&entries, aliases));
    let got = match host.run_via(&plugin, &input, replayer, None).await {
        Ok(output) => recording::RunOutcome::Output(output),
        Err(e) => recording::RunOutcome::Failed(e.to_string()),
    };
    Ok((got != expected).then(|| format!("  expected: {expected:?}\n  got:      {got:?}")))
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = load_config(&args.common)?;
    config.forward_elicitation_by_default();
    let host = std::sync::Arc::new(Host::new(config, None)?);
    let mut allowed_hosts: Vec<String> = serve::http::LOOPBACK_HOSTS
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    allowed_hosts.extend(args.allow_hosts);
    let code_mode = if args.code_mode || host.config().code_mode {
        match CodeMode::prepare(&host, crate::CODE_RUNTIME).await {
            Ok(code) => Some(code),
            Err(e) => {
                host.shutdown().await;
                return Err(anyhow::Error::new(e).context("cannot prepare code mode"));
            }
        }
    } else {
        None
    };
    let options = ServeOptions {
        code_mode,
        listen: match args.http {
            Some(addr) => Listen::Http(addr),
            None => Listen::Stdio,
        },
        metrics: args.metrics,
        allowed_hosts,
    };
    let served = serve::serve(host.clone(), options, shutdown_signal()).await;
    if served.is_err() {
        host.shutdown().await;
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn inspect(args: InspectArgs) -> Result<ExitCode> {
    let config = load_config(&args.common)?;
    let host = Host::new(config, None)?;
    let file = match host.read(&args.plugin) {
        Ok(file) => file,
        // Refused by its first bytes: still a report, saying what it is.
        Err(e @ PluginError::Load(weir_host::sandbox::LoadError::NotWasm(_))) => {
            host.shutdown().await;
            let report = serde_json::json!({
                "file": args.plugin,
                "kind": "not WebAssembly",
                "world": {"ok": false, "error": e.to_string()},
                "runs_under": {"error": e.to_string()},
            });
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_inspection(&report));
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    let shape = tokio::task::block_in_place(|| host.shape(&file));
    let (policy, pin) = host.config().grant_for(&file.name);
    let effective = tokio::task::block_in_place(|| host.load_file(&file));
    let manifest = file.manifest.clone().unwrap_or_default();
    let report = serde_json::json!({
        "file": file.location,
        "name": file.name,
        "bytes": file.bytes.len(),
        "sha256": file.sha256,
        "pinned": pin.map(|p| p == file.sha256),
        "kind": match &shape {
            Ok(_) => "component",
            Err(PluginError::Load(weir_host::sandbox::LoadError::CoreModule(_))) => "core module",
            Err(PluginError::Load(weir_host::sandbox::LoadError::NotWasm(_))) => "not WebAssembly",
            Err(_) => "invalid",
        },
        "world": match &shape {
            Ok(s) => match &s.links {
                Ok(()) => serde_json::json!({"targets": "weir:agent/agent@0.1.0", "ok": true}),
                Err(why) => serde_json::json!({"ok": false, "error": why}),
            },
            Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
        },
        "imports": shape.as_ref().map(|s| s.imports.clone()).unwrap_or_default(),
        "exports": shape.as_ref().map(|s| s.exports.clone()).unwrap_or_default(),
        "manifest": {
            "version": manifest.version,
            "description": manifest.description,
            "input_schema": manifest.input_schema,
            "asks": manifest.policy.as_ref().and_then(|p| p.allow.clone()),
        },
        "grant": policy.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "runs_under": match &effective {
            Ok(p) => serde_json::json!({
                "allow": p.policy().allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "memory_mb": p.policy().memory_bytes >> 20,
                "deadline_secs": p.policy().deadline.as_secs_f64(),
                "max_calls_per_run": p.policy().max_calls_per_run,
                "max_parallel_calls": p.policy().max_parallel_calls,
                "scratch_dir": p.policy().scratch_dir,
            }),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        },
    });
    host.shutdown().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_inspection(&report));
    }
    Ok(if report["world"]["ok"] == true && effective.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `weir inspect` for a person: the facts first, then what it reaches.
fn render_inspection(r: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let list = |v: &serde_json::Value| {
        let items: Vec<String> = v
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut out = String::new();
    out.push_str(&format!("plugin      {}\n", text(&r["name"])));
    out.push_str(&format!(
        "file        {} ({} bytes)\n",
        text(&r["file"]),
        r["bytes"]
    ));
    out.push_str(&format!(
        "sha256      {}{}\n",
        text(&r["sha256"]),
        match r["pinned"].as_bool() {
            Some(true) => " (matches its pin)",
            Some(false) => " (DOES NOT match its pin)",
            None => "",
        }
    ));
    out.push_str(&format!("kind        {}\n", text(&r["kind"])));
    out.push_str(&format!(
        "world       {}\n",
        if r["world"]["ok"] == true {
            format!("{} (links)", text(&r["world"]["targets"]))
        } else {
            format!("does not link: {}", text(&r["world"]["error"]))
        }
    ));
    out.push_str(&format!("imports     {}\n", list(&r["imports"])));
    out.push_str(&format!("exports     {}\n", list(&r["exports"])));
    out.push_str(&format!(
        "manifest    version {}; {}\n",
        text(&r["manifest"]["version"]),
        text(&r["manifest"]["description"])
    ));
    out.push_str(&format!("asks for    {}\n", list(&r["manifest"]["asks"])));
    out.push_str(&format!("granted     {}\n", list(&r["grant"])));
    let runs = &r["runs_under"];
    out.push_str(&match runs.get("error") {
        Some(e) => format!("runs under  cannot load: {}\n", text(e)),
        None => format!(
            "runs under  may call {}; {} MiB; deadline {} s; {} calls per run, {} at once{}\n",
            list(&runs["allow"]),
            runs["memory_mb"],
            runs["deadline_secs"],
            runs["max_calls_per_run"],
            runs["max_parallel_calls"],
            if runs["scratch_dir"] == true {
                "; a scratch dir"
            } else {
                ""
            }
        ),
    });
    out
}

async fn stats(args: StatsArgs) -> Result<ExitCode> {
    // Every replica's figures, summed; one that cannot be read is named
    // (on stderr) and left out, and only all failing is an error.
    let read = || async {
        let token = args.token.as_deref();
        let texts = join_all(
            args.url
                .iter()
                .map(|url| crate::stats::fetch_metrics(url, token)),
        )
        .await;
        let mut replicas = Vec::new();
        let mut failed = Vec::new();
        for (url, text) in args.url.iter().zip(texts) {
            match text {
                Ok(text) => replicas.push(weir_host::serve::status::parse(&text)),
                Err(e) => failed.push(format!("{url}: {e}")),
            }
        }
        if replicas.is_empty() {
            anyhow::bail!("{}", failed.join("; "));
        }
        for failure in &failed {
            eprintln!("weir stats: left out {failure}");
        }
        Ok::<_, anyhow::Error>(weir_host::serve::status::summarize(
            &weir_host::serve::status::merge(&replicas),
        ))
    };
    if !args.watch {
        let stats = read().await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&stats)?);
        } else {
            print!("{}", crate::stats::render_text(&stats));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let watch = async {
        loop {
            let screen = match read().await {
                Ok(stats) => crate::stats::render_text(&stats),
                Err(e) => format!("{e:#}\n"),
            };
            // Home, clear, redraw: the figures change in place.
            print!(
                "\x1b[H\x1b[2J{} — {}\n\n{screen}",
                args.url.join(", "),
                humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            );
            let _ = std::io::Write::flush(&mut std::io::stdout());
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    };
    tokio::select! {
        () = watch => {}
        () = shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn doctor(args: DoctorArgs) -> Result<ExitCode> {
    let config = load_config(&args.common)?;
    let host = Host::new(config, None)?;
    let checking = Progress::show(format!(
        "starting {} servers and checking every plugin",
        host.sessions().server_names().count()
    ));
    let report = tokio::select! {
        report = crate::doctor::check(&host) => Some(report),
        () = shutdown_signal() => None,
    };
    drop(checking);
    host.shutdown().await;
    let Some(report) = report else {
        eprintln!("weir: interrupted; every session is closed");
        return Ok(ExitCode::from(130));
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot encode the report")?
        );
    } else {
        print!("{}", crate::doctor::render(&report));
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn list(args: CommonArgs) -> Result<ExitCode> {
    let config = load_config(&args)?;
    let host = Host::new(config, None)?;
    let mut ok = true;

    match host.load_all() {
        Ok(loaded) => {
            if let Some(dir) = &host.config().plugins_dir {
                println!("Plugins in {}:", dir.display());
            }
            for (name, plugin) in &loaded {
                let status = match plugin {
                    Ok(p) => {
                        let grants: Vec<String> =
                            p.policy().allow.iter().map(ToString::to_string).collect();
                        format!(
                            "ok (may call: {})",
                            if grants.is_empty() {
                                "nothing".into()
                            } else {
                                grants.join(", ")
                            }
                        )
                    }
                    Err(e) => {
                        ok = false;
                        format!("error: {e}")
                    }
                };
                println!("  {name:<24} {status}");
            }
            if loaded.is_empty() {
                println!("  (none)");
            }
        }
        Err(PluginError::NoDirectory(_)) => {
            println!("Plugins: no plugins directory (use --plugins DIR)")
        }
        Err(e) => {
            ok = false;
            println!("Plugins: {e}");
        }
    }

    println!("Servers:");
    let sessions = host.sessions();
    let caller = Caller::new("weir-list");
    let names: Vec<&str> = sessions.server_names().collect();
    let lists = tokio::select! {
        lists = join_all(names.iter().map(|n| sessions.server_tools(&caller, n))) => Some(lists),
        () = shutdown_signal() => None,
    };
    let protocols: std::collections::BTreeMap<String, Option<String>> = sessions
        .stats()
        .into_iter()
        .map(|s| (s.name, s.protocol))
        .collect();
    for (name, tools) in names.iter().zip(lists.into_iter().flatten()) {
        match tools {
            Ok(tools) => {
                let protocol = protocols.get(*name).cloned().flatten().unwrap_or_default();
                println!("  {name} ({} tools, MCP {protocol})", tools.len());
                for tool in tools {
                    let description = tool.description.unwrap_or_default();
                    let first_line = description.lines().next().unwrap_or("");
                    println!("    {:<28} {first_line}", tool.name);
                }
            }
            Err(e) => {
                ok = false;
                println!("  {name}: {e}");
            }
        }
    }
    host.shutdown().await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
