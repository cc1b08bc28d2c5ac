//! A small HTTP client for the API: `orderflow order …` and `orderflow sku …`.

use anyhow::{bail, Context as _};
use clap::Subcommand;
use serde_json::{json, Value};

/// Where the API is and who calls it.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The node's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ORDERFLOW_URL")]
    pub url: String,
    /// A bearer token (dev mode prints one at start-up).
    #[arg(long, env = "ORDERFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ApiArgs {
    /// The headers every request carries: the bearer token, if any.
    pub fn headers(&self) -> anyhow::Result<reqwest::header::HeaderMap> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .context("--token is not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(headers)
    }

    /// An HTTP client that sends the token, if any, with every request.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        reqwest::Client::builder()
            .default_headers(self.headers()?)
            .build()
            .context("building the HTTP client")
    }
}

/// `orderflow order …`
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Place an order and print it.
    Place {
        #[command(flatten)]
        api: ApiArgs,
        /// Who orders.
        #[arg(long, default_value = "alice")]
        customer: String,
        /// An item as SKU:QUANTITY:UNIT_PRICE (minor units); repeatable.
        #[arg(long = "item", required = true)]
        items: Vec<String>,
        /// The payment token (`tok_decline` always declines).
        #[arg(long, default_value = "tok_visa")]
        payment_method: String,
        /// Makes retries safe: the same key never places a second order.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Wait this long for the order to end (e.g. 5s).
        #[arg(long)]
        wait: Option<String>,
    },
    /// Print an order with its history.
    Get {
        #[command(flatten)]
        api: ApiArgs,
        /// The order id.
        id: String,
        /// Wait this long for the order to end (e.g. 5s).
        #[arg(long)]
        wait: Option<String>,
    },
    /// Ask to cancel an order.
    Cancel {
        #[command(flatten)]
        api: ApiArgs,
        /// The order id.
        id: String,
    },
}

/// `orderflow sku …`
#[derive(Debug, Subcommand)]
pub enum SkuCommand {
    /// Add units to a SKU.
    Restock {
        #[command(flatten)]
        api: ApiArgs,
        /// The SKU.
        sku: String,
        /// Units to add.
        quantity: u64,
    },
    /// Print a SKU's stock.
    Get {
        #[command(flatten)]
        api: ApiArgs,
        /// The SKU.
        sku: String,
    },
}

fn parse_item(raw: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = raw.split(':').collect();
    let [sku, quantity, unit_price] = parts.as_slice() else {
        bail!("item {raw:?}: expected SKU:QUANTITY:UNIT_PRICE");
    };
    let quantity: u32 = quantity.parse().with_context(|| format!("item {raw:?}: quantity"))?;
    let unit_price: u64 = unit_price
        .parse()
        .with_context(|| format!("item {raw:?}: unit price"))?;
    Ok(json!({ "sku": sku, "quantity": quantity, "unit_price": unit_price }))
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<()> {
    let response = request.send().await.context("calling the orderflow API")?;
    let status = response.status();
    let body: Value = response.json().await.context("reading the API's answer")?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if !status.is_success() {
        bail!("the API answered {status}");
    }
    Ok(())
}

fn with_wait(url: String, wait: Option<String>) -> String {
    match wait {
        Some(w) => format!("{url}?wait={w}"),
        None => url,
    }
}

/// Runs `orderflow order …`.
pub async fn order(command: OrderCommand) -> anyhow::Result<()> {
    let (OrderCommand::Place { api, .. } | OrderCommand::Get { api, .. } | OrderCommand::Cancel { api, .. }) = &command;
    let http = api.client()?;
    match command {
        OrderCommand::Place {
            api: ApiArgs { url, .. },
            customer,
            items,
            payment_method,
            idempotency_key,
            wait,
        } => {
            let items = items
                .iter()
                .map(|i| parse_item(i))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let body = json!({ "customer_id": customer, "items": items, "payment_method": payment_method });
            let mut request = http.post(with_wait(format!("{url}/api/v1/orders"), wait)).json(&body);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            send(request).await
        }
        OrderCommand::Get {
            api: ApiArgs { url, .. },
            id,
            wait,
        } => send(http.get(with_wait(format!("{url}/api/v1/orders/{id}"), wait))).await,
        OrderCommand::Cancel {
            api: ApiArgs { url, .. },
            id,
        } => send(http.post(format!("{url}/api/v1/orders/{id}/cancel"))).await,
    }
}

/// Runs `orderflow sku …`.
pub async fn sku(command: SkuCommand) -> anyhow::Result<()> {
    let (SkuCommand::Restock { api, .. } | SkuCommand::Get { api, .. }) = &command;
    let http = api.client()?;
    match command {
        SkuCommand::Restock {
            api: ApiArgs { url, .. },
            sku,
            quantity,
        } => {
            send(
                http.post(format!("{url}/api/v1/skus/{sku}/restock"))
                    .json(&json!({ "quantity": quantity })),
            )
            .await
        }
        SkuCommand::Get {
            api: ApiArgs { url, .. },
            sku,
        } => send(http.get(format!("{url}/api/v1/skus/{sku}"))).await,
    }
}
