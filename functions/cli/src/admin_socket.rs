//! The accounts of a running `nixery serve`, for the admin CLI. The server holds
//! `accounts.redb` (redb allows one process per file), so it also listens on `admin.sock` in
//! the storage directory (mode 0600: whoever may read the database file may use it), and the
//! CLI speaks to it there when it finds the file in use.
//!
//! The protocol is one JSON request line and one JSON answer line per connection: an
//! internal call between two copies of this binary, for which HTTP would add nothing.

use async_trait::async_trait;
use nixery_core::accounts::{Accounts, Counted, Day, Meter, Tenant, UsageQuery, UsageRow};
use nixery_core::storage::StorageError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The socket's name in the storage directory.
pub const SOCKET: &str = "admin.sock";

/// The calls the admin commands make.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
enum Call {
    CreateTenant {
        tenant: Tenant,
    },
    GetTenant {
        name: String,
    },
    ListTenants,
    UpdateTenant {
        tenant: Tenant,
    },
    DeleteTenant {
        name: String,
    },
    Usage {
        tenant: Option<String>,
        since: Option<Day>,
        until: Option<Day>,
    },
}

/// Serve `accounts` on `<storage>/admin.sock` until the process ends.
pub fn serve(storage: &Path, accounts: Arc<dyn Accounts>) -> std::io::Result<()> {
    let path = storage.join(SOCKET);
    // A socket left by a server that died; the index lock makes sure none runs now.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let accounts = accounts.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, accounts.as_ref()).await {
                    tracing::warn!(error = %e, "admin socket connection failed");
                }
            });
        }
    });
    Ok(())
}

async fn answer(stream: UnixStream, accounts: &dyn Accounts) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Call>(&line) {
        Ok(call) => match perform(call, accounts).await {
            Ok(value) => serde_json::json!({ "ok": value }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        },
        Err(e) => serde_json::json!({ "error": format!("bad request: {e}") }),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    write.shutdown().await
}

fn json<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

async fn perform(call: Call, accounts: &dyn Accounts) -> Result<Value, StorageError> {
    Ok(match call {
        Call::CreateTenant { tenant } => json(accounts.create_tenant(&tenant).await?),
        Call::GetTenant { name } => json(accounts.get_tenant(&name).await?),
        Call::ListTenants => json(accounts.list_tenants().await?),
        Call::UpdateTenant { tenant } => json(accounts.update_tenant(&tenant).await?),
        Call::DeleteTenant { name } => json(accounts.delete_tenant(&name).await?),
        Call::Usage {
            tenant,
            since,
            until,
        } => json(
            &accounts
                .usage(&UsageQuery {
                    tenant,
                    since,
                    until,
                })
                .await?,
        ),
    })
}

/// The accounts of the server listening on a storage directory's admin socket.
pub struct SocketAccounts {
    path: PathBuf,
}

impl SocketAccounts {
    pub fn new(storage: &Path) -> SocketAccounts {
        SocketAccounts {
            path: storage.join(SOCKET),
        }
    }

    async fn call<T: for<'de> Deserialize<'de>>(&self, call: Call) -> Result<T, StorageError> {
        let io = |e: std::io::Error| StorageError::io(&self.path, e);
        let stream = UnixStream::connect(&self.path).await.map_err(io)?;
        let (read, mut write) = stream.into_split();
        let request =
            serde_json::to_string(&call).map_err(|e| StorageError::backend("admin socket", e))?;
        write
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(io)?;
        let mut line = String::new();
        BufReader::new(read)
            .read_line(&mut line)
            .await
            .map_err(io)?;
        let reply: Value =
            serde_json::from_str(&line).map_err(|e| StorageError::backend("admin socket", e))?;
        if let Some(error) = reply.get("error").and_then(Value::as_str) {
            return Err(StorageError::backend("nixery serve", error));
        }
        serde_json::from_value(reply["ok"].clone())
            .map_err(|e| StorageError::backend("admin socket", e))
    }
}

#[async_trait]
impl Accounts for SocketAccounts {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, StorageError> {
        self.call(Call::CreateTenant {
            tenant: tenant.clone(),
        })
        .await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>, StorageError> {
        self.call(Call::GetTenant { name: name.into() }).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StorageError> {
        self.call(Call::ListTenants).await
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<bool, StorageError> {
        self.call(Call::UpdateTenant {
            tenant: tenant.clone(),
        })
        .await
    }

    async fn delete_tenant(&self, name: &str) -> Result<bool, StorageError> {
        self.call(Call::DeleteTenant { name: name.into() }).await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StorageError> {
        let UsageQuery {
            tenant,
            since,
            until,
        } = query.clone();
        self.call(Call::Usage {
            tenant,
            since,
            until,
        })
        .await
    }

    /// Metering is the server's own business; the admin commands never count.
    async fn count(
        &self,
        _: &str,
        _: &Day,
        _: &str,
        _: Meter,
        _: Option<u64>,
    ) -> Result<Counted, StorageError> {
        Err(StorageError::backend(
            "admin socket",
            "counting is not an admin call",
        ))
    }

    async fn used(&self, _: &str, _: &Day, _: Meter) -> Result<u64, StorageError> {
        Err(StorageError::backend(
            "admin socket",
            "counting is not an admin call",
        ))
    }

    async fn add_bytes(&self, _: &str, _: &Day, _: &str, _: u64) -> Result<(), StorageError> {
        Err(StorageError::backend(
            "admin socket",
            "counting is not an admin call",
        ))
    }
}
