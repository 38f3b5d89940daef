//! The HTTP API: routes translate between HTTP and the [`query`](super::query) layer,
//! nothing more. Every error is a JSON `{"error": "..."}` with a 4xx status for bad
//! input (unknown hash, malformed id, bad paging, oversized or malformed body).
//!
//! Paths follow Esplora where it has one (`/blocks/tip/height`, `/block/:hash`,
//! `/tx/:txid/merkle-proof`, ...), and the tutorial for `GET /chain` and
//! `POST /transactions/new`. The OpenAPI document is `GET /openapi.json`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query as QueryParams, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use super::metrics::{RouteLabels, RouteOnly};
use super::query::{Query, QueryError, TxStatus};
use super::{BlockEvent, PendingTx, Shared};
use crate::chain::accounts::{AccountsError, ChainId, SignedTransfer};
use crate::chain::merkle::tx_id;
use crate::chain::{
    parse_submitted, BlockHash, Origin, SubmittedTx, Transaction, TxId, MAX_TX_BYTES,
};
use crate::transport::submit::Submitter;

/// Most items in one page (`/chain`, `/blocks`, `/address/:a/txs`).
pub const MAX_PAGE: u64 = 1000;
/// Blocks per `/blocks` page, as Esplora.
const BLOCKS_PAGE: u64 = 10;
/// How long the broker may go unanswered before `/healthz` says it is unreachable.
const BROKER_SILENCE: Duration = Duration::from_secs(10);

const EXPLORER: &str = include_str!("explorer.html");
const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share.
pub struct App {
    pub query: Query,
    pub shared: Arc<Shared>,
    /// None: submitting is disabled (read-only server).
    pub submitter: Option<Submitter>,
    pub max_lag: i64,
}

/// An error response: status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::SeedRules => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
            }
            QueryError::Empty => ApiError::not_found(err.to_string()),
            QueryError::NotAnAddress(_) => ApiError::bad(err.to_string()),
            QueryError::Sqlite { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The whole API as a value (tests call it in-process).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(explorer))
        .route("/openapi.json", get(openapi))
        .route("/chain", get(chain))
        .route("/transactions/new", post(new_transaction))
        .route("/blocks/tip/height", get(tip_height))
        .route("/blocks/tip/hash", get(tip_hash))
        .route("/blocks", get(blocks))
        .route("/blocks/{start_height}", get(blocks_from))
        .route("/block/{hash}", get(block))
        .route("/block/{hash}/txids", get(block_txids))
        .route("/block-height/{height}", get(block_height))
        .route("/tx/{txid}", get(tx))
        .route("/tx/{txid}/merkle-proof", get(merkle_proof))
        .route("/address/{address}", get(address))
        .route("/address/{address}/txs", get(address_txs))
        .route("/events", get(events))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such route (see /openapi.json)") })
        .layer(DefaultBodyLimit::max(MAX_TX_BYTES))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), track))
        .with_state(app)
}

/// Counts and times every request by route and status.
async fn track(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let m = &app.shared.metrics;
    m.request_seconds
        .get_or_create(&RouteOnly {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RouteLabels {
            route,
            status: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

async fn explorer() -> Html<&'static str> {
    Html(EXPLORER)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Paging parameters, parsed by hand so every mistake gets a clear 400.
fn page(
    params: Result<QueryParams<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    default_limit: u64,
) -> ApiResult<(Option<u64>, u64)> {
    let QueryParams(params) = params.map_err(|e| ApiError::bad(e.body_text()))?;
    let number = |name: &str| -> ApiResult<Option<u64>> {
        params
            .get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad(format!(
                        "`{name}` must be a non-negative integer, got {v:?}"
                    ))
                })
            })
            .transpose()
    };
    let from = number("from")?;
    let limit = number("limit")?.unwrap_or(default_limit);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad(format!(
            "`limit` must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    Ok((from, limit))
}

/// The tutorial's `GET /chain`: `{chain, length}`; `?from=HEIGHT&limit=N` pages it
/// (`length` is always the whole chain's).
async fn chain(
    State(app): State<Arc<App>>,
    params: Result<QueryParams<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let (from, limit) = page(params, MAX_PAGE)?;
    let length = app.query.tip()?.map_or(0, |t| t.height);
    let blocks = app.query.chain_page(from.unwrap_or(1), limit)?;
    Ok(Json(json!({ "chain": blocks, "length": length })))
}

fn parse_hash(text: &str) -> ApiResult<BlockHash> {
    text.to_ascii_lowercase()
        .parse()
        .map_err(|e| ApiError::bad(format!("not a block hash: {e}")))
}

fn parse_txid(text: &str) -> ApiResult<TxId> {
    text.to_ascii_lowercase()
        .parse()
        .map_err(|e| ApiError::bad(format!("not a transaction id: {e}")))
}

fn parse_height(text: &str) -> ApiResult<u64> {
    text.parse()
        .map_err(|_| ApiError::bad(format!("not a block height: {text:?}")))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn tip_height(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let tip = app.query.tip()?.ok_or(QueryError::Empty)?;
    Ok(text(tip.height.to_string()))
}

async fn tip_hash(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let tip = app.query.tip()?.ok_or(QueryError::Empty)?;
    Ok(text(tip.id))
}

async fn blocks(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(app
        .query
        .blocks_down_from(None, BLOCKS_PAGE)?)))
}

async fn blocks_from(
    State(app): State<Arc<App>>,
    Path(start): Path<String>,
) -> ApiResult<Json<Value>> {
    let start = parse_height(&start)?;
    Ok(Json(json!(app
        .query
        .blocks_down_from(Some(start), BLOCKS_PAGE)?)))
}

async fn block(State(app): State<Arc<App>>, Path(hash): Path<String>) -> ApiResult<Json<Value>> {
    let hash = parse_hash(&hash)?;
    let block = app
        .query
        .block(&hash)?
        .ok_or_else(|| ApiError::not_found(format!("no block {hash} on the chain")))?;
    Ok(Json(json!(block)))
}

async fn block_txids(
    State(app): State<Arc<App>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Value>> {
    let hash = parse_hash(&hash)?;
    let block = app
        .query
        .block(&hash)?
        .ok_or_else(|| ApiError::not_found(format!("no block {hash} on the chain")))?;
    let ids: Vec<String> = app
        .query
        .txids(block.height)?
        .iter()
        .map(TxId::to_string)
        .collect();
    Ok(Json(json!(ids)))
}

async fn block_height(
    State(app): State<Arc<App>>,
    Path(height): Path<String>,
) -> ApiResult<Response> {
    let height = parse_height(&height)?;
    let block = app
        .query
        .block_at(height)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    Ok(text(block.id))
}

async fn tx(State(app): State<Arc<App>>, Path(txid): Path<String>) -> ApiResult<Response> {
    let id = parse_txid(&txid)?;
    if let Some(mut info) = app.query.tx(&id)? {
        // The indexer's height saves a query; before it reports, ask the index.
        let tip = match app.shared.height() {
            0 => app.query.tip()?.map_or(info.block_height, |t| t.height),
            h => h,
        }
        .max(info.block_height);
        info.status = Some(TxStatus {
            confirmed: true,
            state: "confirmed",
            block_height: info.block_height,
            block_hash: info.block_hash.clone(),
            block_time: info.block_time,
            confirmations: tip.saturating_sub(info.block_height) + 1,
        });
        return Ok(Json(info).into_response());
    }
    if let Some(p) = app.shared.pending(&id) {
        return Ok(Json(json!({
            "txid": id.to_string(),
            "status": { "confirmed": false, "state": "pending" },
            "origin": { "partition": p.partition, "offset": p.offset },
        }))
        .into_response());
    }
    Err(ApiError::not_found(format!(
        "transaction {id} is not on the chain (nor pending from this server)"
    )))
}

async fn merkle_proof(
    State(app): State<Arc<App>>,
    Path(txid): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_txid(&txid)?;
    match app.query.merkle_proof(&id)? {
        Some(proof) => Ok(Json(json!(proof))),
        None if app.shared.pending(&id).is_some() => Err(ApiError::not_found(format!(
            "transaction {id} is pending: no block, so no proof yet"
        ))),
        None => Err(ApiError::not_found(format!(
            "transaction {id} is not on the chain"
        ))),
    }
}

async fn address(
    State(app): State<Arc<App>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Value>> {
    let info = app
        .query
        .address(&address)?
        .ok_or_else(|| ApiError::not_found(format!("address {address:?} has no transactions")))?;
    Ok(Json(json!(info)))
}

async fn address_txs(
    State(app): State<Arc<App>>,
    Path(address): Path<String>,
    params: Result<QueryParams<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let (from, limit) = page(params, 25)?;
    let txs = app.query.address_txs(&address, from.unwrap_or(0), limit)?;
    Ok(Json(json!(txs)))
}

/// The body of `POST /transactions/new` (`{from, to, amount}`, or the Flask original's
/// `{sender, recipient, amount}`): the record to publish and the transaction it is.
/// Pure, so it can be fuzzed (`fuzz/fuzz_targets/http_body.rs`); the error is the
/// message of the 400 response.
pub fn parse_new_transaction(body: &[u8]) -> Result<(Vec<u8>, SubmittedTx), String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("the body must be a JSON object {\"from\", \"to\", \"amount\"}".into());
    };
    let field = |a: &str, b: &str| object.get(a).or_else(|| object.get(b)).cloned();
    let (from, to, amount) = (
        field("from", "sender"),
        field("to", "recipient"),
        object.get("amount").cloned(),
    );
    let missing: Vec<&str> = [("from", &from), ("to", &to), ("amount", &amount)]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(format!("Missing values: {}", missing.join(", ")));
    }
    let payload = json!({ "from": from, "to": to, "amount": amount })
        .to_string()
        .into_bytes();
    let submitted = parse_submitted(&payload).map_err(|e| e.to_string())?;
    Ok((payload, submitted))
}

/// The tutorial's `POST /transactions/new`: `{from, to, amount}` (or the Flask
/// original's `{sender, recipient, amount}`), published to the transactions topic.
async fn new_transaction(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|r| {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the body is over the {MAX_TX_BYTES}-byte limit")
        } else {
            r.body_text()
        };
        ApiError::new(status, message)
    })?;
    if let Some(chain) = app.query.accounts_chain_id()? {
        return new_transfer(&app, &body, &chain).await;
    }
    let (payload, submitted) = parse_new_transaction(&body).map_err(ApiError::bad)?;
    let (partition, offset) = submit(&app, &payload).await?;
    let tx = Transaction::from_submitted(&submitted, Origin { partition, offset });
    let id = tx_id(tx.canonical_json().as_bytes());
    accepted(&app, id, partition, offset)
}

/// `POST /transactions/new` on an accounts chain: the body is a signed transfer
/// (`{"amount", "from", "nonce", "sig", "to"}`, docs/accounts.md). Its form, its
/// signature for this chain and its nonce against the indexed tip are checked here, so
/// a mistake gets a 400 with the reason instead of a silent rejection by the nodes; what
/// is published is the transfer's canonical submitted form.
async fn new_transfer(app: &App, body: &[u8], chain: &ChainId) -> ApiResult<Response> {
    let bad = |e: AccountsError| ApiError::bad(e.to_string());
    let signed = SignedTransfer::parse(body).map_err(bad)?;
    signed.verify(chain).map_err(bad)?;
    let t = signed.transfer;
    let next = app
        .query
        .address(&t.from.to_hex())?
        .and_then(|a| a.next_nonce)
        .unwrap_or(0);
    if t.nonce < next {
        return Err(bad(AccountsError::NonceTooLow {
            account: t.from,
            expected: next,
            found: t.nonce,
        }));
    }
    let (partition, offset) = submit(app, &signed.to_json()).await?;
    let origin = Origin { partition, offset };
    let id = tx_id(signed.block_json(origin).as_bytes());
    accepted(app, id, partition, offset)
}

/// Publishes a transaction record; (partition, offset) once the broker has it.
async fn submit(app: &App, payload: &[u8]) -> ApiResult<(i32, i64)> {
    let Some(submitter) = &app.submitter else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server does not accept transactions",
        ));
    };
    submitter
        .submit(payload)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

/// The 201 answer for a published transaction (remembered as pending until indexed).
fn accepted(app: &App, id: TxId, partition: i32, offset: i64) -> ApiResult<Response> {
    app.shared.add_pending(
        id,
        PendingTx {
            partition,
            offset,
            submitted: SystemTime::now(),
        },
    );
    let next = app.query.tip().ok().flatten().map_or(1, |t| t.height + 1);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": format!("Transaction will be added to Block {next}"),
            "txid": id.to_string(),
            "partition": partition,
            "offset": offset,
        })),
    )
        .into_response())
}

/// Server-sent events: a `tip` event on connect, then a `block` event per new block.
async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let updates = BroadcastStream::new(app.shared.events.subscribe());
    let tip = app.query.tip().ok().flatten().map(|t| BlockEvent {
        height: t.height,
        hash: t.id,
        tx_count: t.tx_count as usize,
        timestamp: t.timestamp,
    });
    let event = |name: &'static str, e: &BlockEvent| {
        Ok(Event::default()
            .event(name)
            .data(serde_json::to_string(e).unwrap_or_default()))
    };
    let first = tokio_stream::iter(tip.map(|t| event("tip", &t)));
    // A subscriber that falls behind by more than the channel holds skips blocks
    // (the next event still carries the current height).
    let rest = updates.filter_map(move |r| r.ok().map(|e| event("block", &e)));
    Sse::new(first.chain(rest)).keep_alive(KeepAlive::default())
}

/// 200 when the broker answers and the index is within `max_lag` records of the chain
/// topic's end; 503 naming each problem otherwise.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    let s = app.shared.status();
    let mut problems = Vec::new();
    match (&s.broker_error, s.broker_ok_at) {
        (Some(err), _) => problems.push(format!("broker unreachable: {err}")),
        (None, None) => problems.push("broker unreachable: not answered yet".to_string()),
        (None, Some(at)) if at.elapsed() > BROKER_SILENCE => problems.push(format!(
            "broker unreachable: no answer for {} s",
            at.elapsed().as_secs()
        )),
        _ => {}
    }
    let behind = s.topic_end.map(|end| (end - s.next_offset).max(0));
    if let Some(n) = behind.filter(|n| *n > app.max_lag) {
        problems.push(format!(
            "index behind by {n} blocks (chain-topic records; allowed {})",
            app.max_lag
        ));
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if problems.is_empty() { "ok" } else { "unhealthy" },
        "problems": problems,
        "height": s.height,
        "tip": s.tip.map(|t| t.to_string()),
        "indexed_offset": s.next_offset,
        "topic_end": s.topic_end,
        "behind": behind,
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.shared.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use serde_json::Number;
    use tower::ServiceExt;

    use super::*;
    use crate::chain::contents::ContentsReader;
    use crate::chain::proof::InclusionProof;
    use crate::chain::{genesis, BlockTemplate, ChainState, Rules};
    use crate::serve::{index::write_batch, schema};
    use crate::transport::chain_log::ChainRecord;

    /// A v2 chain (difficulty 0, so any nonce will do) with blocks of 2, 3 and 5
    /// transactions, indexed in two batches; returns the router and every txid.
    fn indexed_chain(dir: &std::path::Path) -> (Router, Vec<Vec<TxId>>) {
        let rules = Rules::V2 { difficulty: 0 };
        let mut state = ChainState::new();
        let mut records = vec![genesis(rules, 1.0)];
        state.apply(&records[0]).unwrap();
        let mut ids = Vec::new();
        let mut offset = 0;
        for (b, user_txs) in [1usize, 2, 4].into_iter().enumerate() {
            let mut txs = Vec::new();
            for _ in 0..user_txs {
                let sub = parse_submitted(
                    format!(
                        r#"{{"from": "alice", "to": "bob", "amount": {}}}"#,
                        offset + 1
                    )
                    .as_bytes(),
                )
                .unwrap();
                txs.push(Transaction::from_submitted(
                    &sub,
                    Origin {
                        partition: 0,
                        offset,
                    },
                ));
                offset += 1;
            }
            txs.push(Transaction::reward("miner", &Number::from(1)));
            ids.push(
                txs.iter()
                    .map(|t| tx_id(t.canonical_json().as_bytes()))
                    .collect::<Vec<_>>(),
            );
            let t = BlockTemplate::new(state.tip().unwrap(), rules, 2.0 + b as f64, &txs);
            let block = t.seal(b as u64);
            state.apply(&block).unwrap();
            records.push(block);
        }
        records.push(b"not a block".to_vec());
        let path = dir.join("index.sqlite");
        let mut conn = schema::open_writer(&path, "chain").unwrap();
        let records: Vec<ChainRecord> = records
            .into_iter()
            .enumerate()
            .map(|(i, payload)| ChainRecord {
                offset: i as i64,
                payload,
            })
            .collect();
        let (mut replay, mut reader) = (ChainState::new(), ContentsReader::new());
        let first = write_batch(&mut conn, &mut replay, &mut reader, &records[..2]).unwrap();
        assert_eq!((first.blocks, first.next_offset), (2, 2));
        let rest = write_batch(&mut conn, &mut replay, &mut reader, &records[2..]).unwrap();
        assert_eq!((rest.blocks, rest.invalid, rest.next_offset), (2, 1, 5));
        let app = App {
            query: Query::new(&path),
            shared: Arc::new(Shared::default()),
            submitter: None,
            max_lag: 10,
        };
        (router(Arc::new(app)), ids)
    }

    async fn call(router: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = HttpRequest::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    #[tokio::test]
    async fn every_transaction_has_a_proof_that_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (router, ids) = indexed_chain(dir.path());
        for (b, block) in ids.iter().enumerate() {
            for (pos, id) in block.iter().enumerate() {
                let (status, v) = call(&router, "GET", &format!("/tx/{id}/merkle-proof"), "").await;
                assert_eq!(status, StatusCode::OK, "{v}");
                let proof: InclusionProof = serde_json::from_value(v).unwrap();
                proof.verify().unwrap();
                if pos + 1 < block.len() {
                    // User transactions are unique; the reward repeats (earliest shown).
                    assert_eq!((proof.block_height, proof.pos), (b as u64 + 2, pos as u64));
                    assert_eq!(proof.tx_count, block.len() as u64);
                }
            }
        }
        let reward = ids[0].last().unwrap();
        let (_, v) = call(&router, "GET", &format!("/tx/{reward}"), "").await;
        assert_eq!(v["occurrences"], json!(3));
        assert_eq!(v["status"]["confirmations"], json!(3));
        // Upper-case ids are accepted.
        let upper = ids[1][0].to_string().to_uppercase();
        let (status, _) = call(&router, "GET", &format!("/tx/{upper}"), "").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn paging_errors_and_health_without_a_broker() {
        let dir = tempfile::tempdir().unwrap();
        let (router, _) = indexed_chain(dir.path());
        let (status, v) = call(&router, "GET", "/chain?from=2&limit=2", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["length"], json!(4));
        assert_eq!(v["chain"][0]["index"], json!(2));
        assert_eq!(v["chain"][1]["index"], json!(3));
        let (_, v) = call(&router, "GET", "/blocks/tip/height", "").await;
        assert_eq!(v, json!(4));
        let (_, v) = call(&router, "GET", "/address/alice", "").await;
        assert_eq!(
            (v["tx_count"].clone(), v["sent"].clone()),
            (json!(7), json!(28.0))
        );
        let (_, v) = call(&router, "GET", "/address/miner", "").await;
        assert_eq!(v["received"], json!(3.0));
        for (uri, status) in [
            ("/blocks/abc", StatusCode::BAD_REQUEST),
            ("/chain?limit=x", StatusCode::BAD_REQUEST),
            ("/chain?limit=1001", StatusCode::BAD_REQUEST),
            ("/tx/00", StatusCode::BAD_REQUEST),
            ("/block-height/5", StatusCode::NOT_FOUND),
        ] {
            let (got, v) = call(&router, "GET", uri, "").await;
            assert_eq!(got, status, "{uri}: {v}");
            assert!(v["error"].is_string(), "{uri}: {v}");
        }
        let (status, v) = call(&router, "POST", "/transactions/new", r#"{"amount": 1}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"], json!("Missing values: from, to"));
        let (status, v) = call(
            &router,
            "POST",
            "/transactions/new",
            &format!(
                r#"{{"from": "{}", "to": "b", "amount": 1}}"#,
                "x".repeat(5000)
            ),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        let (status, v) = call(
            &router,
            "POST",
            "/transactions/new",
            r#"{"from": "a", "to": "b", "amount": 1}"#,
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        // No broker watcher ran: the broker has not answered.
        let (status, v) = call(&router, "GET", "/healthz", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(v["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("broker unreachable"));
    }
}
