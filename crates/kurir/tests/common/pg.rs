//! A fresh PostgreSQL schema per test (the database `test` on 127.0.0.1:5432, or
//! `KURIR_TEST_POSTGRES_URL`), dropped afterwards.

use std::process::Command;
use std::time::Duration;

use sqlx::Connection;

/// Like the store's conformance suite: `KURIR_TEST_POSTGRES_URL`, else the database `test` on
/// 127.0.0.1:5432 as the operating-system user (sqlx has no libpq-style default user).
pub fn pg_url() -> String {
    if let Ok(url) = std::env::var("KURIR_TEST_POSTGRES_URL") {
        return url;
    }
    let user = std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            let out = Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
        })
        .filter(|u| !u.is_empty());
    match user {
        Some(u) => format!("postgres://{u}@127.0.0.1:5432/test"),
        None => "postgres://127.0.0.1:5432/test".to_owned(),
    }
}

/// A fresh schema for this test, dropped afterwards (also when an assertion fails).
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Schema {
    pub async fn create() -> Schema {
        let url = pg_url();
        let mut c = match tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::PgConnection::connect(&url),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!(
                "cannot connect to PostgreSQL at {url}: {e}. This test needs it and does not \
                 skip: start PostgreSQL on 127.0.0.1:5432 with a database `test` that trusts \
                 this user, or point KURIR_TEST_POSTGRES_URL at one"
            ),
            Err(_) => panic!(
                "PostgreSQL at {url} did not answer within 10 s. This test needs it and does not \
                 skip: start PostgreSQL on 127.0.0.1:5432 with a database `test` that trusts \
                 this user, or point KURIR_TEST_POSTGRES_URL at one"
            ),
        };
        let name = format!(
            "kurir_serve_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("cannot create the schema {name} at {url}: {e}"));
        let _ = c.close().await;
        Schema { url, name }
    }

    /// The URL Kurir is given: only this schema on its search path.
    pub fn kurir_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut c = sqlx::PgConnection::connect(&url).await?;
                sqlx::query("SET lock_timeout = '20s'")
                    .execute(&mut c)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&mut c)
                .await?;
                c.close().await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}: {done:?}", self.name);
        }
    }
}
