//! Where an app's store lives. One test in its own binary, because it sets
//! the process-wide `DATABASE_URL`.

#[tokio::test]
async fn database_url_beats_settings_which_beat_the_app_folder() {
    std::env::remove_var(jit_store::DATABASE_URL_ENV);
    let app = tempfile::tempdir().unwrap();

    // Default: <app>/.jit/org.db, with a .gitignore that ignores everything.
    let store = jit_store::open_for_app(app.path(), None).await.unwrap();
    let default_db = app.path().join(".jit").join("org.db");
    assert_eq!(store.location(), default_db.display().to_string());
    assert!(default_db.exists());
    assert_eq!(
        std::fs::read_to_string(app.path().join(".jit/.gitignore")).unwrap(),
        "*\n"
    );

    // The app settings' URL; a relative SQLite path is relative to the app.
    let store = jit_store::open_for_app(app.path(), Some("sqlite://data.db"))
        .await
        .unwrap();
    assert_eq!(
        store.location(),
        app.path().join("data.db").display().to_string()
    );

    // DATABASE_URL wins over both.
    let env_db = app.path().join("from-env.db");
    std::env::set_var(jit_store::DATABASE_URL_ENV, env_db.display().to_string());
    let store = jit_store::open_for_app(app.path(), Some("sqlite://data.db"))
        .await
        .unwrap();
    std::env::remove_var(jit_store::DATABASE_URL_ENV);
    assert_eq!(store.location(), env_db.display().to_string());
    assert!(env_db.exists());
}

#[tokio::test]
async fn connection_errors_name_the_server_but_never_the_password() {
    let err = match jit_store::open("postgres://app:s3cret-pw@127.0.0.1:1/test").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("nothing listens on port 1"),
    };
    assert!(err.contains("postgres://app@127.0.0.1:1/test"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let text = "these are notes, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = match jit_store::open(path.to_str().unwrap()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a text file must not open as a store"),
    };
    assert!(err.contains("notes.db"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}
