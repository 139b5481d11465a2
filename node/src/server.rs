//! `run`: start everything a node serves, stop it cleanly when `shutdown` resolves.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use cairn_raft::network::{
    AddressBook, AmnesiaHook, Directories, GroupRegistry, PeerChannels, PeerOptions, PeerService,
};
use cairn_raft::storage::{Db, DbOptions, FatalHook};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;

use crate::admission::{Admitted, Gate as Admission};
use crate::auth::{Authenticator, ForwardedPrincipal};
use crate::config::Config;
use crate::controller::{duties, rebalancer, repair, Controller};
use crate::groups::{membership, quiesce, reconciler, scrubber, supervisor, GroupEnv, LocalGroups};
use crate::identity::Identity;
use crate::join;
use crate::listener::Listeners;
use crate::liveness::Liveness;
use crate::service::{Access, AdminService, BrokerService, GroupsService, InternalService};
use crate::tls::{Side, TlsState};

/// Runs a node on `listeners` until `shutdown` resolves.
///
/// # Errors
/// Identity mismatch, storage that cannot open, the controller group failing to start, server
/// errors.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // After a failed fsync RocksDB is read-only and the page cache may have dropped the data:
    // the only safe reaction is to stop the process (never retry an fsync).
    // RocksDB meeting damaged data in the background (InvalidData) is recorded in the data
    // directory first; the node then starts over in the same process, and the fresh start
    // sets the damaged data aside and has the cluster rebuild this node's replicas.
    let on_fatal: FatalHook = Arc::new(|e: &std::io::Error| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            tracing::error!(error = %e, "storage damaged; restarting this node to rebuild its replicas from the others");
            eprintln!("cairn-node: storage damaged ({e}); restarting to rebuild");
            crate::restart::in_place();
        }
        tracing::error!(error = %e, "WAL fsync failed; aborting the node");
        eprintln!("cairn-node: WAL fsync failed ({e}); aborting");
        std::process::abort();
    });
    let metrics = crate::metrics::Metrics::new().context("registering the metrics")?;
    let metrics_listener = crate::listener::open_metrics(&config)?;
    let Listeners { client: mut listener, peer: mut peer_listener } = listeners;
    let tls = match &config.tls {
        Some(files) => {
            let t = TlsState::load(files.clone(), member_hosts(&config)).context("loading the TLS files")?;
            tracing::info!(ca = %files.ca.display(), cert = %files.cert.display(), "TLS on the client and peer listeners; peers must present a member certificate of the cluster CA");
            Some(t)
        }
        None => {
            tracing::warn!("no TLS configured: both listeners are plaintext and peers are not authenticated (firewall the peer port)");
            None
        }
    };
    // True once this node asked for its own replacement (its storage lost fsynced data).
    let mut replacing = false;
    let (identity, db) = loop {
        let identity = match Identity::load(&config)? {
            Some(id) => {
                // A directory of a known cluster: are the members answering on the configured
                // addresses of that cluster?
                if let Some(cluster_id) = &id.cluster_id {
                    let opts = start_opts(&config, tls.as_ref());
                    join::cluster::check(&config, cluster_id, &PeerChannels::new(opts)).await?;
                }
                id
            }
            None => {
                // A new directory: ask the peers first whether the cluster knew this node with
                // another one (a lost disk), answering their own checks on clones of the sockets.
                let (client_probe, client) = clone_listener(listener)?;
                let (peer_probe, peer) = clone_listener(peer_listener)?;
                (listener, peer_listener) = (client, peer);
                let opts = start_opts(&config, tls.as_ref());
                let probes = join::Probes { client: client_probe, peer: peer_probe, tls: tls.clone() };
                let verdict = join::check(&config, probes, &PeerChannels::new(opts), replacing).await?;
                Identity::create(&config, verdict.controller_incarnation())?
            }
        };
        tracing::info!(
            node = config.node_id,
            cluster = identity.cluster_id.as_deref().unwrap_or("not known yet"),
            directory = format_args!("{:#x}", identity.directory_id),
            data_dir = %config.data_dir.display(),
            "starting"
        );
        let (db_dir, on_fatal) = (Identity::db_dir(&config), on_fatal.clone());
        let db_options = DbOptions {
            write_buffer_bytes: usize::try_from(config.storage.write_buffer_bytes).unwrap_or(usize::MAX),
            observer: metrics.storage_observer(),
            ..DbOptions::default()
        };
        // The controller's own data is read whole before anything starts: a node whose
        // metadata replica is damaged cannot start its groups at all.
        let opened = tokio::task::spawn_blocking(move || {
            let db = Db::open(&db_dir, &db_options, on_fatal)?;
            db.verify_group(crate::controller::state::CONTROLLER_GROUP).map(|()| db)
        })
        .await?;
        match opened {
            Ok(db) => break (identity, db),
            // Damaged beyond what RocksDB recovers silently, or recovered without writes this
            // node had fsynced: every local replica is suspect. Rebuild them all from the others.
            Err(e) if e.is_corruption() && !replacing => {
                tracing::error!(error = %e, "this node's storage lost or damaged data it had acknowledged; asking the cluster to replace this node");
                let opts = start_opts(&config, tls.as_ref());
                join::recover::request_replacement(&config, identity.directory_id, &PeerChannels::new(opts)).await;
                let cfg = config.clone();
                let aside = tokio::task::spawn_blocking(move || Identity::set_aside(&cfg)).await??;
                tracing::warn!(moved_to = %aside.display(), "damaged data set aside (delete it once the node is back in sync)");
                replacing = true;
            }
            Err(e) => return Err(e).context("opening the storage"),
        }
    };
    if config.faults.any() {
        tracing::warn!(faults = ?config.faults, "FAULT INJECTION ENABLED: this node misbehaves on purpose");
    }

    let config = Arc::new(config);
    // Peers that address an earlier directory of this node prove it lost its disk: stop.
    let on_amnesia: AmnesiaHook = Arc::new(|why: &str| {
        tracing::error!(%why, "this node's data directory was lost; stopping (see docs/operations.md, \"Replacing a node\")");
        eprintln!(
            "cairn-node: {why}; stopping. Run `cairn node replace <id>` and restart with an empty data directory."
        );
        std::process::exit(3);
    });
    // A replacement refuses (without stopping) peers that still address the lost directory.
    let founding = identity.controller_incarnation == crate::controller::state::CONTROLLER_INCARNATION;
    let directories = Directories::new(identity.directory_id, founding.then_some(on_amnesia));
    let addresses = AddressBook::default();
    addresses.set(peer_addresses(&config).into_iter().collect());
    let peer_opts = PeerOptions {
        local_address: config.peer_source_ip,
        directories: directories.clone(),
        addresses: addresses.clone(),
        tls: tls.as_ref().map(TlsState::source),
        ..PeerOptions::default()
    };
    let message_bytes_max = peer_opts.message_bytes_max;
    let (disk, disk_task) = crate::disk::DiskGuard::spawn(
        config.node_id,
        config.data_dir.clone(),
        config.storage.free_space_min_bytes,
        4 * config.storage.write_buffer_bytes,
        config.faults.fake_free_space,
    );
    let env = GroupEnv {
        me: config.node_id,
        db: db.clone(),
        peers: PeerChannels::new(peer_opts),
        registry: GroupRegistry::default(),
        config: config.clone(),
        disk: disk.clone(),
        metrics: metrics.clone(),
    };

    // The controller first: its restored metadata tells the reconciler what to start.
    let controller = Arc::new(Controller::start(&env, identity.controller_incarnation).await?);
    let groups = Arc::new(LocalGroups::new(env.clone(), controller.watch()));
    let liveness = Liveness::default();
    let timers =
        quiesce::Timers { election_timeout_max: std::time::Duration::from_millis(config.raft.election_timeout_ms_max) };
    let coordinators = crate::coordinator::Coordinators::new(groups.clone(), config.groups);
    let mut tasks = liveness.spawn(config.node_id, peer_addresses(&config), env.peers.clone(), controller.watch());
    tasks.push(disk_task);
    if let Some(t) = &tls {
        tasks.push(tokio::spawn(crate::tls::reload(t.clone())));
    }
    tasks.push(tokio::spawn(coordinators.clone().run()));
    let registry = crate::registry::Registry::new(groups.clone());
    tasks.push(tokio::spawn(registry.clone().run()));
    tasks.extend([
        tokio::spawn(reconciler::run(groups.clone(), controller.watch())),
        tokio::spawn(quiesce::run(groups.clone(), liveness.clone(), timers)),
        tokio::spawn(duties::run(controller.clone(), config.clone(), liveness.clone(), identity.directory_id)),
        tokio::spawn(membership::run(groups.clone(), controller.clone())),
        tokio::spawn(publish_directories(controller.watch(), directories.clone(), addresses)),
        tokio::spawn(record_cluster_id(controller.watch(), identity.clone(), config.clone())),
        tokio::spawn(rebalancer::run(groups.clone(), liveness.clone(), timers.election_timeout_max)),
        tokio::spawn(supervisor::run(groups.clone())),
        tokio::spawn(scrubber::run(groups.clone(), config.storage.scrub_bytes_per_second, metrics.scrub())),
        tokio::spawn(crate::retention::sweeper::run(groups.clone(), config.retention)),
        tokio::spawn(repair::run(controller.clone(), groups.clone(), liveness.clone(), config.storage.clone())),
    ]);

    metrics
        .register(Box::new(crate::metrics::view::NodeView::new(groups.clone(), liveness.clone(), controller.clone())?))
        .context("registering the node's gauges")?;
    if let Some(l) = metrics_listener {
        let addr = l.local_addr()?;
        let (m, g, c, r) = (metrics.clone(), groups.clone(), controller.clone(), registry.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::metrics::http::serve(l, m, g, c, r, std::future::pending()).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        }));
        tracing::info!(%addr, "serving metrics at http://{addr}/metrics and the schema registry at http://{addr}/");
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cairn_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;

    // One access check for the node's services, reading the ACLs of this node's metadata.
    let access = Access::new(&config, controller.watch());
    let groups_service = GroupsService::new(coordinators.clone(), groups.clone(), liveness.clone(), access.clone());
    tasks.push(
        crate::metrics::groups::spawn(&metrics, groups_service.clone()).context("registering the group metrics")?,
    );
    let broker = BrokerService::new(
        &config,
        groups.clone(),
        controller.clone(),
        liveness.clone(),
        metrics.clone(),
        access.clone(),
        registry.clone(),
    );
    let admin = AdminService::new(controller.clone(), groups.clone(), liveness.clone(), access);
    // One stop for both listeners: the shutdown signal, or either server ending on its own.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    tasks.push(tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.send_replace(true);
        }
    }));
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tracing::info!(client = %config.advertise_addr, peer = %config.peer_listen_addr, "serving");
    config.auth.announce(tls.is_some());
    // The client listener: the public API only. Nothing of the peer protocol is reachable here.
    // Every call of the public services is authenticated first (health and reflection are
    // not: probes and tooling need them, and they reveal nothing of the data).
    let auth = Authenticator::new(config.auth.clone());
    let admin = admin.into_server();
    let gate = crate::admission::Gate::new(config.limits.client_connections_max);
    let client_server = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(config.limits.client_streams_per_connection_max))
        .accept_http1(true)
        .layer(crate::http1::Http1Notice)
        .add_service(health_service.clone())
        .add_service(reflection)
        .add_service(InterceptedService::new(broker.into_server(), auth.clone()))
        .add_service(InterceptedService::new(admin.clone(), auth.clone()))
        .add_service(InterceptedService::new(groups_service.into_server(), auth));
    let client_server: Served = match &tls {
        Some(t) => Box::pin(client_server.serve_with_incoming_shutdown(
            crate::tls::incoming(listener, t.clone(), Side::Client, Some(gate)),
            stopped(stopping.clone()),
        )),
        None => Box::pin(
            client_server.serve_with_incoming_shutdown(incoming(listener, Some(gate)), stopped(stopping.clone())),
        ),
    };
    // The peer listener: Raft transport, node-internal calls, and admin calls other nodes
    // forward to the controller leader (with their caller's principal).
    let peer_server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(InterceptedService::new(admin, ForwardedPrincipal))
        .add_service(
            PeerService::new(env.registry.clone(), directories, message_bytes_max)
                .with_write_gate(std::sync::Arc::new(move || disk.refusal()))
                .into_server(),
        )
        .add_service(
            InternalService::new(
                groups.clone(),
                coordinators.clone(),
                registry.clone(),
                rand::random(),
                identity.directory_id,
            )
            .into_server(),
        );
    let peer_server: Served = match &tls {
        Some(t) => Box::pin(peer_server.serve_with_incoming_shutdown(
            crate::tls::incoming(peer_listener, t.clone(), Side::Peer, None),
            stopped(stopping.clone()),
        )),
        None => {
            Box::pin(peer_server.serve_with_incoming_shutdown(incoming(peer_listener, None), stopped(stopping.clone())))
        }
    };
    let (client_served, peer_served) = tokio::join!(
        async {
            let r = client_server.await;
            stop.send_replace(true);
            r
        },
        async {
            let r = peer_server.await;
            stop.send_replace(true);
            r
        }
    );

    tracing::info!("shutting down");
    for t in &tasks {
        t.abort();
    }
    groups.shutdown().await;
    controller.shutdown().await;
    drop(db);
    client_served.context("client listener")?;
    peer_served.context("peer listener")?;
    tracing::info!("stopped");
    Ok(())
}

type Served = std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// Peer channel options of the start-up checks (before the node's own transport exists).
fn start_opts(config: &Config, tls: Option<&TlsState>) -> PeerOptions {
    PeerOptions { local_address: config.peer_source_ip, tls: tls.map(TlsState::source), ..PeerOptions::default() }
}

/// The hosts of the members' peer addresses: what a peer's certificate must name.
fn member_hosts(config: &Config) -> Vec<String> {
    let hosts = config.initial_cluster.values().filter_map(|a| crate::address::host_port(&a.peer).ok());
    let mut hosts: Vec<String> = hosts.map(|(h, _)| h.to_string()).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Accepted connections of `listener`, without Nagle's delay; with a `gate`, only while it
/// has a free slot (the others are closed at once).
fn incoming(
    listener: tokio::net::TcpListener,
    gate: Option<Admission>,
) -> impl tokio_stream::Stream<Item = std::io::Result<Admitted<tokio::net::TcpStream>>> {
    TcpListenerStream::new(listener).filter_map(move |s| {
        let s = match s {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let slot = match &gate {
            Some(g) => Some(g.admit(s.peer_addr().ok())?),
            None => None,
        };
        if let Err(e) = s.set_nodelay(true) {
            return Some(Err(e));
        }
        Some(Ok(Admitted::new(s, slot)))
    })
}

/// A second handle on `listener`'s socket (for the start-up check to serve on), and the
/// listener back.
fn clone_listener(
    listener: tokio::net::TcpListener,
) -> std::io::Result<(std::net::TcpListener, tokio::net::TcpListener)> {
    let std_listener = listener.into_std()?;
    let probe = std_listener.try_clone()?;
    Ok((probe, tokio::net::TcpListener::from_std(std_listener)?))
}

/// Node id → peer address of every member, from the configuration.
fn peer_addresses(config: &Config) -> std::collections::BTreeMap<u64, String> {
    config.initial_cluster.iter().map(|(id, a)| (*id, a.peer.clone())).collect()
}

/// Keeps the transport's registered directories and peer addresses in line with the controller
/// metadata.
async fn publish_directories(
    mut state: tokio::sync::watch::Receiver<Arc<crate::controller::state::ClusterState>>,
    directories: Directories,
    addresses: AddressBook,
) {
    loop {
        let (map, peers) = {
            let s = state.borrow_and_update();
            let dirs = s.directories.iter().filter(|(_, d)| **d != 0).map(|(n, d)| (*n, *d)).collect();
            (dirs, s.nodes.iter().map(|(n, a)| (*n, a.peer.clone())).collect::<std::collections::HashMap<_, _>>())
        };
        directories.set_registered(map);
        if !peers.is_empty() {
            addresses.set(peers);
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// Records the cluster's id in the data directory's identity once the controller metadata has
/// it (the bootstrap, or the metadata a joining node catches up on), so a later start can tell
/// this directory's cluster from another one on the same addresses.
async fn record_cluster_id(
    mut state: tokio::sync::watch::Receiver<Arc<crate::controller::state::ClusterState>>,
    mut identity: Identity,
    config: Arc<Config>,
) {
    loop {
        let cluster_id = state.borrow_and_update().cluster_id.clone();
        if !cluster_id.is_empty() && identity.cluster_id.as_deref() == Some(cluster_id.as_str()) {
            return; // recorded at an earlier start
        }
        if !cluster_id.is_empty() {
            let cfg = config.clone();
            let recorded = tokio::task::spawn_blocking(move || {
                let result = identity.record_cluster_id(&cfg, &cluster_id);
                (identity, cluster_id, result)
            })
            .await;
            match recorded {
                Ok((_, cluster_id, Ok(true))) => {
                    tracing::info!(cluster = %cluster_id, "cluster id recorded in the data directory");
                    return;
                }
                Ok((_, cluster_id, Ok(false))) => {
                    // The directory's controller replica says one cluster, its identity another:
                    // nothing this node does can tell which is right.
                    tracing::error!(cluster = %cluster_id, "the controller metadata names another cluster than this data directory's identity file");
                    return;
                }
                Ok((back, _, Err(e))) => {
                    tracing::warn!(error = %e, "recording the cluster id failed; will retry");
                    identity = back;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording the cluster id did not finish");
                    return;
                }
            }
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}
