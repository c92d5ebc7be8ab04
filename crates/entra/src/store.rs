//! Where refresh tokens live between runs.
//!
//! A delegated sign-in (device code) happens once; after that Kurir lives on refresh tokens for
//! years. Each refresh returns a new refresh token that replaces the old one, so the store must
//! be written on every refresh and must survive restarts. The lead's encrypted SQLite store
//! implements this trait; [`MemoryRefreshStore`] is the default and for tests.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use secrecy::SecretString;

/// An error of a store implementation, shown to the admin as its Display text (so it must not
/// contain the token).
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// The future a store method returns. Boxed so that `dyn RefreshTokenStore` works without an
/// extra macro crate; implement with `Box::pin(async move { … })`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Persistent storage of refresh tokens. `key` is a stable string built from authority, tenant,
/// client id, flow, user and scope (see [`crate::CacheKey::storage_key`]); it contains no secret.
pub trait RefreshTokenStore: Send + Sync {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SecretString>>;
    /// Replaces any token stored under `key`.
    fn save<'a>(&'a self, key: &'a str, token: SecretString) -> StoreFuture<'a, ()>;
    /// Forgets the token (after Entra refused it); deleting a missing key is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;
}

/// A store in memory: refresh tokens survive as long as the process.
#[derive(Default)]
pub struct MemoryRefreshStore {
    tokens: Mutex<HashMap<String, SecretString>>,
}

impl MemoryRefreshStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many refresh tokens are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored keys (not the tokens), for diagnostics and tests.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SecretString>> {
        // A panic while holding this lock cannot leave the map half-updated (single insert or
        // remove), so a poisoned lock is still safe to use.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for MemoryRefreshStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRefreshStore")
            .field("keys", &self.keys())
            .finish()
    }
}

impl RefreshTokenStore for MemoryRefreshStore {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SecretString>> {
        let v = self.lock().get(key).cloned();
        Box::pin(async move { Ok(v) })
    }

    fn save<'a>(&'a self, key: &'a str, token: SecretString) -> StoreFuture<'a, ()> {
        self.lock().insert(key.to_owned(), token);
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.lock().remove(key);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[tokio::test]
    async fn save_replaces_and_delete_forgets() {
        let s = MemoryRefreshStore::new();
        assert!(s.load("k").await.unwrap().is_none());
        s.save("k", SecretString::from("rt1")).await.unwrap();
        s.save("k", SecretString::from("rt2")).await.unwrap();
        assert_eq!(s.load("k").await.unwrap().unwrap().expose_secret(), "rt2");
        assert_eq!(s.len(), 1);
        s.delete("k").await.unwrap();
        s.delete("k").await.unwrap();
        assert!(s.is_empty());
        assert!(!format!("{s:?}").contains("rt2"));
    }
}
