//! The HTTP view of the received route table: `/` (HTML), `/routes.json`, `/routes.yaml`.
//!
//! The JSON document has upstream's shape: `{"date": "YYYY-MM-DD HH:MM:SS", "vnet": {VNI: {DESTINATION:
//! [NEXTHOP...]}}, "metalbondVersion": ...}`, where a destination key is the JSON text of Go's `Destination`
//! struct (`{"IPVersion":4,"Prefix":"10.0.0.0/24"}`) and a next hop is Go's `NextHop` struct with its field names.
//! Keys are sorted as Go sorts map keys (as strings).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use ipnet::IpNet;
use serde::Serialize;

use crate::instance::MetalBond;
use crate::route::NextHopJson;

/// The version reported in `metalbondVersion`.
pub const VERSION: &str = concat!("ironnet-", env!("CARGO_PKG_VERSION"));

/// The document served at `/routes.json` and `/routes.yaml`.
#[derive(Debug, Serialize)]
pub struct RoutesDocument {
    date: String,
    vnet: BTreeMap<String, BTreeMap<String, Vec<NextHopJson>>>,
    #[serde(rename = "metalbondVersion")]
    metalbond_version: String,
}

#[derive(Serialize)]
struct DestinationKey {
    #[serde(rename = "IPVersion")]
    ip_version: u8,
    #[serde(rename = "Prefix")]
    prefix: IpNet,
}

fn destination_key(dest: &IpNet) -> String {
    let key = DestinationKey {
        ip_version: if matches!(dest, IpNet::V4(_)) { 4 } else { 6 },
        prefix: *dest,
    };
    serde_json::to_string(&key).unwrap_or_else(|_| dest.to_string())
}

impl RoutesDocument {
    /// Snapshots the instance's received routes.
    pub fn from_instance(mb: &MetalBond) -> Self {
        let mut vnet: BTreeMap<String, BTreeMap<String, Vec<NextHopJson>>> = BTreeMap::new();
        for (vni, dests) in mb.route_table() {
            let entry = vnet.entry(vni.to_string()).or_default();
            for (dest, hops) in dests {
                entry.insert(
                    destination_key(&dest),
                    hops.iter().map(NextHopJson::from).collect(),
                );
            }
        }
        let date = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string();
        Self {
            date,
            vnet,
            metalbond_version: VERSION.to_owned(),
        }
    }

    fn to_html(&self, mb: &MetalBond) -> String {
        let mut html = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>metalbond</title>\
             <style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style></head><body>\n",
        );
        let _ = writeln!(
            html,
            "<h1>metalbond route table</h1><p>{} &middot; {}</p>",
            self.date, VERSION
        );
        for (vni, dests) in mb.route_table() {
            let _ = writeln!(
                html,
                "<h2>VNI {vni}</h2><table><tr><th>Destination</th><th>Next hops</th></tr>"
            );
            for (dest, hops) in dests {
                let hops: Vec<String> = hops.iter().map(|h| h.to_string()).collect();
                let _ = writeln!(html, "<tr><td>{dest}</td><td>{}</td></tr>", hops.join("<br>"));
            }
            html.push_str("</table>\n");
        }
        html.push_str("</body></html>\n");
        html
    }
}

async fn index(State(mb): State<MetalBond>) -> Html<String> {
    Html(RoutesDocument::from_instance(&mb).to_html(&mb))
}

async fn routes_json(State(mb): State<MetalBond>) -> Response {
    match serde_json::to_string_pretty(&RoutesDocument::from_instance(&mb)) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("Error: {e}")).into_response(),
    }
}

async fn routes_yaml(State(mb): State<MetalBond>) -> Response {
    match serde_saphyr::to_string(&RoutesDocument::from_instance(&mb)) {
        Ok(body) => ([(header::CONTENT_TYPE, "text/yaml")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("Error: {e}")).into_response(),
    }
}

/// The router serving the three views of `mb`'s route table.
pub fn router(mb: MetalBond) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/routes.json", get(routes_json))
        .route("/routes.yaml", get(routes_yaml))
        .with_state(mb)
}

/// Binds `addr` and serves [`router`] on it in a background task; returns the bound address.
pub async fn serve(mb: MetalBond, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(mb)).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok(local)
}
