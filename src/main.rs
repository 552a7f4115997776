//! The command line: load the configuration, bind, serve; or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokengate::config::{self, Cors, LogFormat, Overrides, Settings, TlsClientAuth};
use tokengate::inspect::Keys;
use tokengate::logsafe::Escaped;
use tokengate::Gateway;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// An authenticating reverse proxy for OAuth 2.0 / OpenID Connect access tokens.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, default_value = "proxy.yaml")]
    config: PathBuf,
    /// Listen on this address instead of the file's `listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Log as text or JSON lines instead of the file's `log.format`.
    #[arg(long, value_name = "text|json")]
    log_format: Option<String>,
    /// Forward verified requests to this URL instead of the file's `upstream.url`.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and print a summary (exit 0), or every problem (exit 2).
    Check {
        /// Also fetch every issuer's discovery document and JWKS, as at run time, and list
        /// each key as usable or skipped with its reason; exit 2 when an issuer cannot be
        /// reached or has no usable key.
        #[arg(long)]
        online: bool,
    },
    /// Decode a token and run every check on it, each with its verdict: exit 0 when it would
    /// be accepted, 1 when not. Keys come from --config (default) or --jwks.
    Inspect {
        /// Check against this JWKS file instead of the configuration's issuers.
        #[arg(long, value_name = "FILE")]
        jwks: Option<PathBuf>,
        /// Check only the JWS signature (for tokens that are not access tokens).
        #[arg(long)]
        signature_only: bool,
        /// With --jwks: use `kty: oct` keys as HMAC secrets (HS256/384/512). Without it they
        /// are skipped, as the proxy skips them in every JWKS.
        #[arg(long, requires = "jwks")]
        allow_hmac: bool,
        /// The token; read from standard input when absent.
        token: Option<String>,
    },
}

/// mimalloc: per-thread free lists suit hyper's many short-lived buffers better than
/// glibc's malloc (measured with bench/load.sh). Built with `no_thp`: asking for
/// transparent huge pages made its first arena resident in 2 MiB pages (idle RSS 18 MiB
/// instead of 11) for no measurable speed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for an invalid configuration.
const CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.listen.clone(),
        log_format: cli.log_format.clone(),
        upstream: cli.upstream.clone(),
    };
    if let Some(Command::Inspect {
        jwks,
        signature_only,
        allow_hmac,
        token,
    }) = &cli.command
    {
        return inspect(
            &cli.config,
            &overrides,
            jwks.as_deref(),
            (*signature_only, *allow_hmac),
            token.clone(),
        );
    }
    let settings = match config::load(&cli.config, &overrides) {
        Ok(settings) => settings,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    match cli.command {
        Some(Command::Check { online }) => {
            print!("{}", summary(&settings));
            if online {
                check_online(&settings)
            } else {
                ExitCode::SUCCESS
            }
        }
        Some(Command::Inspect { .. }) | None => serve(settings, cli.config, overrides),
    }
}

/// `tokengate inspect`: exit 0 accepted, 1 rejected, 2 unusable configuration or input.
fn inspect(
    config_path: &std::path::Path,
    overrides: &Overrides,
    jwks: Option<&std::path::Path>,
    (signature_only, allow_hmac): (bool, bool),
    token: Option<String>,
) -> ExitCode {
    let token = match token {
        Some(t) => t,
        None => {
            let mut text = String::new();
            if std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).is_err() {
                eprintln!("cannot read the token from standard input");
                return ExitCode::from(CONFIG_ERROR);
            }
            text
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match jwks {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => runtime.block_on(tokengate::inspect::inspect(
                &token,
                Keys::Jwks {
                    jwks: &bytes,
                    allow_hmac,
                },
                signature_only,
            )),
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                return ExitCode::from(CONFIG_ERROR);
            }
        },
        None => match config::load(config_path, overrides) {
            Ok(settings) => runtime.block_on(tokengate::inspect::inspect(
                &token,
                Keys::Config(&settings),
                signature_only,
            )),
            Err(errors) => {
                eprint!("{errors}");
                return ExitCode::from(CONFIG_ERROR);
            }
        },
    };
    print!("{}", report.text);
    if report.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn summary(s: &Settings) -> String {
    let mut out = format!("{}: valid\n  listen: {}\n", s.source.display(), s.listen);
    for i in &s.issuers {
        let algorithms: Vec<String> = i.algorithms.iter().map(|a| format!("{a:?}")).collect();
        out += &format!(
            "  issuer: {} (audiences: {}; algorithms: {}; keys: {:?}; {} claim assertion(s))\n",
            i.issuer,
            i.audiences.join(", "),
            algorithms.join(", "),
            i.key_source,
            i.claims.len()
        );
        if let Some(intro) = &i.introspection {
            let auth = match intro.auth {
                tokengate::config::ClientAuth::ClientSecretBasic(_) => "client_secret_basic",
                tokengate::config::ClientAuth::ClientSecretPost(_) => "client_secret_post",
                tokengate::config::ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
            };
            out += &format!(
                "    introspection: {} as client {} ({auth}, {:?} answers, cache {}s, negative {}s){}\n",
                intro
                    .endpoint
                    .as_ref()
                    .map_or("discovery's introspection_endpoint", |u| u.as_str()),
                intro.client_id,
                intro.response,
                intro.cache_ttl.as_secs(),
                intro.negative_cache_ttl.as_secs(),
                if i.introspect_jwts { "; JWTs too" } else { "" }
            );
        }
    }
    if !s.opaque_tokens.is_empty() {
        out += &format!(
            "  opaque tokens: introspected at {}\n",
            s.opaque_tokens.join(", then ")
        );
    }
    if s.dev_issuer.is_some() {
        out += "  dev issuer: ON (POST /_dev/token mints tokens; local testing only)\n";
    }
    match &s.upstream {
        Some(u) => out += &format!("  upstream: {}\n", u.url),
        None => out += "  upstream: none (built-in /secure and /api/messages)\n",
    }
    for r in &s.rules.routes {
        out += &format!(
            "  route {}: auth {:?}, dpop {:?}\n",
            r.name, r.rule.auth, r.rule.dpop
        );
    }
    out += &resources(s);
    out += &dpop(s);
    out += match &s.cors {
        Cors::Off => "  cors: off\n",
        Cors::Policy(_) => "  cors: tokengate answers preflights; the upstream's Access-Control-* headers are replaced\n",
        Cors::Upstream => "  cors: handed to the upstream (preflights forwarded without a token)\n",
    };
    let stripped: Vec<String> = s
        .forward
        .foreign_identity
        .iter()
        .map(ToString::to_string)
        .collect();
    out += &format!(
        "  identity headers of other systems stripped from every request: {}\n",
        stripped.join(", ")
    );
    if !s.forward.trusted_identity.is_empty() {
        out += &format!(
            "  kept from trusted_proxies only: {}\n",
            s.forward.trusted_identity.join(", ")
        );
    }
    out += &client_certificates(s);
    if s.upstream.is_some() && matches!(s.cors, Cors::Off) {
        out += "  warning: an upstream is configured and cors: is not: a browser app's preflights will get 401; set cors: { allow_origins: [...] }, or cors: { mode: upstream } if the upstream answers CORS itself\n";
    }
    // `serve` raises the soft limit to the hard one, so the hard limit is what it will have.
    if let Some((_, hard)) = tokengate::fdlimit::current() {
        let pool_max_idle = s.upstream.as_ref().map_or(0, |u| u.pool_max_idle);
        let allowed = tokengate::fdlimit::connections_for(hard, pool_max_idle);
        if s.limits.max_connections > allowed {
            out += &format!(
                "  warning: limits.max_connections is {} but the open-files limit ({hard}) holds {allowed} client connections that each keep an upstream connection; raise the hard limit (LimitNOFILE= in systemd, ulimit -Hn) or lower max_connections\n",
                s.limits.max_connections
            );
        }
    }
    out += &any_of_on_lists(s);
    for (later, earlier) in s.rules.unreachable() {
        out += &format!(
            "  warning: routes[{later}] ({}) can never match: routes[{earlier}] ({}) comes first and covers it\n",
            s.rules.routes[later].name, s.rules.routes[earlier].name
        );
    }
    out
}

/// `check`'s lines for the protected resources: where each one's metadata is served, which
/// routes it covers, the audience its tokens need and whether the token is forwarded.
fn resources(s: &Settings) -> String {
    let mut out = String::new();
    for (index, r) in s.resources.iter().enumerate() {
        let bound = |rule: &tokengate::route::Rule| {
            rule.resource.as_ref().filter(|b| b.index == index).cloned()
        };
        let mut covered: Vec<&str> = s
            .rules
            .routes
            .iter()
            .filter(|route| bound(&route.rule).is_some())
            .map(|route| route.name.as_str())
            .collect();
        if bound(&s.rules.default).is_some() {
            covered.push("(default)");
        }
        let strip = s
            .rules
            .routes
            .iter()
            .filter_map(|route| bound(&route.rule))
            .any(|b| b.strip_authorization);
        out += &format!(
            "  resource {}{}: metadata {}{}; routes {}; audiences {}; Authorization {}\n",
            r.id,
            if r.mcp { " (MCP)" } else { "" },
            r.metadata_url,
            if r.metadata_at_root {
                " and at /.well-known/oauth-protected-resource"
            } else {
                ""
            },
            if covered.is_empty() {
                "none".to_owned()
            } else {
                covered.join(", ")
            },
            if r.audiences.is_empty() {
                "the issuers'".to_owned()
            } else {
                r.audiences.join(", ")
            },
            if strip || s.forward.strip_authorization {
                "not forwarded"
            } else {
                "forwarded"
            },
        );
    }
    out
}

/// `check`'s line on DPoP (RFC 9449): the origin proofs must name, the algorithms, nonces
/// and where used proofs are remembered.
fn dpop(s: &Settings) -> String {
    let d = &s.dpop;
    let origin = match &d.external_url {
        Some(url) => format!("htu origin {url}"),
        None => "htu origin: none configured (a trusted proxy's X-Forwarded-Proto/-Host, forward-auth's Traefik/Caddy headers, or DPoP-bound tokens refused)".to_owned(),
    };
    let store = match &d.replay {
        tokengate::config::ReplaySettings::Memory { max_entries } => {
            format!("memory, this process only, {max_entries} proofs at most")
        }
        tokengate::config::ReplaySettings::Redis { url, .. } => {
            let host = url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            format!("redis at {host}, shared by every replica")
        }
    };
    format!(
        "  dpop: {origin}; algs {}; iat window {}s past, {}s future; nonces {}; replay store {store}\n",
        d.algs(),
        d.iat_past.as_secs(),
        d.iat_future.as_secs(),
        if d.nonce.is_some() { "on" } else { "off" },
    )
}

/// `check`'s line on client certificates (RFC 8705 §3 certificate-bound tokens).
fn client_certificates(s: &Settings) -> String {
    let mut sources = Vec::new();
    if let Some(tls) = &s.tls {
        match tls.client_auth {
            TlsClientAuth::Off => {}
            TlsClientAuth::Required(_) => {
                sources.push("TLS, required, chained to tls.client_ca".to_owned())
            }
            TlsClientAuth::Optional(_) => {
                sources.push("TLS, optional, chained to tls.client_ca".to_owned())
            }
            TlsClientAuth::OptionalAny => sources.push(
                "TLS, optional, any certificate whose key signs the handshake (binding only)"
                    .to_owned(),
            ),
        }
    }
    if let Some(c) = &s.client_certificate {
        sources.push(format!(
            "header {} ({}) from trusted_proxies only",
            c.header,
            c.format.name()
        ));
    }
    if sources.is_empty() {
        return "  client certificates: none (certificate-bound tokens are refused)\n".to_owned();
    }
    format!("  client certificates: {}\n", sources.join("; then "))
}

/// `tokengate check --online`: every issuer's keys, fetched as the proxy fetches them.
fn check_online(settings: &Settings) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let probes = runtime.block_on(tokengate::jwks::probe(settings));
    let mut failed = 0;
    let mut no_endpoint = 0;
    let mut out = String::from("online:\n");
    for p in &probes {
        out += &format!("  issuer {}\n", Escaped(&p.issuer));
        if let Some(d) = &p.discovery {
            out += &format!("    discovery: {}\n", Escaped(d));
        }
        let introspection = settings
            .issuer(&p.issuer)
            .and_then(|i| i.introspection.as_ref());
        match (
            introspection.map(|i| &i.endpoint),
            &p.introspection_endpoint,
        ) {
            (Some(Some(url)), _) => out += &format!("    introspection: {}\n", Escaped(url)),
            (Some(None), Some(url)) => {
                out += &format!("    introspection: {} (from discovery)\n", Escaped(url))
            }
            (Some(None), None) => {
                no_endpoint += 1;
                out += "    introspection: no endpoint configured and discovery names none (https); opaque tokens would get 503\n";
            }
            (None, _) => {}
        }
        match &p.jwks {
            Some(j) => out += &format!("    jwks: {}\n", Escaped(j)),
            None if p.error.is_none() => out += "    keys: the dev issuer's, made at start\n",
            None => {}
        }
        for (kid, kind, algorithms) in &p.usable {
            let algorithms: Vec<String> = algorithms.iter().map(|a| format!("{a:?}")).collect();
            out += &format!(
                "    usable   kid {:?}  {kind}  {}\n",
                Escaped(kid).to_string(),
                algorithms.join(", ")
            );
        }
        for s in &p.skipped {
            out += &format!(
                "    skipped  kid {:?}  {}: {}\n",
                Escaped(&s.kid).to_string(),
                s.reason,
                Escaped(&s.detail)
            );
        }
        if let Some(e) = &p.error {
            failed += 1;
            out += &format!("    FAILED: {}\n", Escaped(e));
        }
    }
    print!("{out}");
    if no_endpoint > 0 {
        println!("online: {no_endpoint} introspecting issuer(s) without an introspection endpoint");
    }
    if failed == 0 && no_endpoint == 0 {
        println!("online: every issuer has usable keys");
        ExitCode::SUCCESS
    } else if failed == 0 {
        ExitCode::from(CONFIG_ERROR)
    } else {
        println!(
            "online: {failed} issuer{} without usable keys; tokens for {} would get 503",
            if failed == 1 { "" } else { "s" },
            if failed == 1 { "it" } else { "them" }
        );
        ExitCode::from(CONFIG_ERROR)
    }
}

/// Claims that usually hold arrays (or space-separated lists): `any_of` compares the whole
/// value, so `groups: { any_of: [Admins] }` never matches `["Admins", "Everyone"]`.
const LIST_CLAIMS: [&str; 4] = ["groups", "roles", "scp", "scope"];

/// `check` warnings for `any_of` on a claim that is usually a list.
fn any_of_on_lists(s: &Settings) -> String {
    let mut places: Vec<(String, &tokengate::claims::ClaimRule)> = Vec::new();
    for (i, issuer) in s.issuers.iter().enumerate() {
        places.extend(issuer.claims.iter().map(|c| (format!("issuers[{i}]"), c)));
    }
    for (i, route) in s.rules.routes.iter().enumerate() {
        places.extend(
            route
                .rule
                .claims
                .iter()
                .map(|c| (format!("routes[{i}]"), c)),
        );
    }
    places.extend(s.rules.default.claims.iter().map(|c| ("default".into(), c)));
    let mut out = String::new();
    for (at, rule) in places {
        let last = rule.path.last().map(String::as_str).unwrap_or_default();
        if matches!(rule.predicate, tokengate::claims::Predicate::AnyOf(_))
            && LIST_CLAIMS.contains(&last)
        {
            out += &format!(
                "  warning: {at}.claims.{}: any_of compares the whole value, and `{last}` is usually a list; for \"has any of these\" write {{ includes_any: [...] }}\n",
                rule.name
            );
        }
    }
    out
}

fn serve(settings: Settings, config_path: std::path::PathBuf, overrides: Overrides) -> ExitCode {
    // Held to the end: dropping it writes out the lines still queued.
    let _log_writer = init_logging(&settings);
    // Before the runtime starts, so every descriptor it opens counts against the raised limit.
    let raised = tokengate::fdlimit::raise();
    match &raised.error {
        None if raised.before == raised.hard => info!(
            soft = raised.soft,
            hard = raised.hard,
            "open files limit: soft {} is already the hard limit; not raised",
            raised.soft
        ),
        None => info!(
            soft_before = raised.before,
            soft = raised.soft,
            hard = raised.hard,
            "open files limit: soft {} raised to the hard limit {}",
            raised.before,
            raised.hard
        ),
        Some(why) => warn!(
            soft = raised.soft,
            hard = raised.hard,
            error = %why,
            "open files limit: soft {} not raised",
            raised.soft
        ),
    }
    // One worker per core this process may run on (taskset and cgroup limits respected).
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    // On one core, a current-thread runtime does the same work without the multi-thread
    // scheduler's cross-thread bookkeeping (measured with bench/load.sh).
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listen = settings.listen;
        let admin_listen = settings.admin_listen;
        let gateway = match Gateway::new(settings) {
            Ok(g) => Arc::new(g),
            Err(e) => {
                error!(error = %Escaped(&e), "cannot start");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                error!(%listen, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        let admin = match admin_listen {
            None => None,
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    error!(listen = %addr, error = %e, "cannot listen (admin)");
                    return ExitCode::FAILURE;
                }
            },
        };
        gateway.start();
        let bound = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let tls = if gateway.tls().is_some() {
            "https"
        } else {
            "http"
        };
        // Installed before saying where we listen: whoever waits for that line may signal at
        // once, and a SIGHUP with no handler yet would end the process (its default action).
        #[cfg(unix)]
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        #[cfg(not(unix))]
        let hangups = None::<()>;
        let shutdown = shutdown_signal();
        info!(listen = %bound, scheme = tls, "tokengate listening");

        let (stop, stopped) = tokio::sync::watch::channel(false);
        if let Some(admin) = admin {
            let admin_bound = admin
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            info!(admin = %admin_bound, "admin listener (metrics, healthz, readyz)");
            tokio::spawn(tokengate::run_admin(
                admin,
                gateway.clone(),
                wait_for(stopped.clone()),
            ));
        }
        tokio::spawn(reload_on_sighup(
            hangups,
            gateway.clone(),
            config_path,
            overrides,
        ));
        // On a worker thread, so accepting and serving share one core's scheduler.
        let server = tokio::spawn(tokengate::run(listener, gateway, async move {
            shutdown.await;
            let _ = stop.send(true);
        }));
        match server.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!(error = %e, "the server task failed");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// SIGHUP: read the file again; swap in a valid configuration, or keep the old one and say
/// why not, with the same messages as `tokengate check`.
#[cfg(unix)]
async fn reload_on_sighup(
    hangups: Option<tokio::signal::unix::Signal>,
    gateway: Arc<Gateway>,
    path: std::path::PathBuf,
    overrides: Overrides,
) {
    {
        let Some(mut hangups) = hangups else {
            warn!("cannot handle SIGHUP: reloads need a restart");
            return;
        };
        while hangups.recv().await.is_some() {
            info!(file = %Escaped(path.display()), "SIGHUP: reloading the configuration");
            let settings = match config::load(&path, &overrides) {
                Ok(s) => s,
                Err(errors) => {
                    for problem in &errors.0 {
                        error!(problem = %Escaped(problem), "configuration rejected; the old one keeps serving");
                    }
                    continue;
                }
            };
            match gateway.reload(settings) {
                Ok(needs) => {
                    for what in needs.0 {
                        warn!(setting = what, "changed, but only a restart applies it");
                    }
                    info!("configuration reloaded");
                }
                Err(e) => {
                    error!(error = %Escaped(&e), "reload failed; the old configuration keeps serving")
                }
            }
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(
    _hangups: Option<()>,
    _gateway: Arc<Gateway>,
    _path: std::path::PathBuf,
    _overrides: Overrides,
) {
}

/// Logs to stderr through a writer thread: the thread that formats a line hands it over and
/// goes on, and the writer thread sends whatever has queued up in one `write(2)` (a 64 KiB
/// buffer, flushed whenever the queue is empty, so a line waits only while others are being
/// written). Not lossy: when 8,192 lines are queued, logging waits rather than drops an
/// access-log line (the queue's slots are allocated up front: 256 KiB). The returned guard
/// writes out what is queued when dropped (waiting at most a second for stderr).
fn init_logging(settings: &Settings) -> tracing_appender::non_blocking::WorkerGuard {
    // RUST_LOG wins over log.level, as users of tracing expect.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(8192)
        .thread_name("tokengate-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    // Colour escapes only on a terminal, never in a file or pipe, and never with NO_COLOR.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(tokengate::logsafe::colour_on_stderr())
        .with_writer(writer);
    match settings.log.format {
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(tokengate::json_log::JsonLines::default())
            .init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

/// Registers SIGTERM and SIGINT now (so neither can arrive unhandled after start-up is
/// logged); the future resolves on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, interrupt) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => info!("SIGINT received"),
                () = wait(term) => info!("SIGTERM received"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            info!("interrupt received");
        }
    }
}
