//! Watches: resume from a resourceVersion, bookmarks, timeoutSeconds, 410 Gone for a
//! version older than the kept history, and selector transitions.

mod common;

use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use testbed::kube::KubeOptions;

fn rv(o: &kube::api::DynamicObject) -> String {
    o.metadata.resource_version.clone().expect("rv")
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() {
    let bed = start().await;
    let api = bed.widgets("default");
    let a = api
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .expect("create");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .expect("patch");
    api.create(&PostParams::default(), &widget("b", json!({"size": 1})))
        .await
        .expect("create");
    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete");

    let stream = api
        .watch(&WatchParams::default().timeout(2), &rv(&a))
        .await
        .expect("watch");
    let events: Vec<_> = tokio::time::timeout(
        Duration::from_secs(5),
        stream.take(3).try_collect::<Vec<_>>(),
    )
    .await
    .expect("in time")
    .expect("events");
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) => {
                format!("ADDED {}", o.metadata.name.clone().unwrap_or_default())
            }
            WatchEvent::Modified(o) => {
                format!("MODIFIED {}", o.metadata.name.clone().unwrap_or_default())
            }
            WatchEvent::Deleted(o) => {
                format!("DELETED {}", o.metadata.name.clone().unwrap_or_default())
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec!["MODIFIED a", "ADDED b", "DELETED a"]);
}

#[tokio::test]
async fn bookmarks_and_timeout_end_the_stream() {
    let bed = start_with(KubeOptions {
        bookmark_interval: Duration::from_millis(100),
        ..KubeOptions::default()
    })
    .await;
    let api = bed.widgets("default");
    let created = api
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .expect("create");
    let stream = api
        .watch(
            &WatchParams::default().timeout(1).labels("none=here"),
            &rv(&created),
        )
        .await
        .expect("watch");
    let events: Vec<_> =
        tokio::time::timeout(Duration::from_secs(5), stream.try_collect::<Vec<_>>())
            .await
            .expect("the server ends the watch after timeoutSeconds")
            .expect("events");
    let bookmarks: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Bookmark(b) => Some(b.metadata.resource_version.clone()),
            _ => None,
        })
        .collect();
    assert!(!bookmarks.is_empty(), "bookmarks arrive: {events:?}");
    assert!(
        bookmarks
            .iter()
            .all(|b| b.parse::<u64>().expect("numeric") >= rv(&created).parse().expect("numeric"))
    );
    // Without allowWatchBookmarks there are none.
    let stream = api
        .watch(
            &WatchParams::default().timeout(1).disable_bookmarks(),
            &rv(&created),
        )
        .await
        .expect("watch");
    let events: Vec<_> = stream.try_collect::<Vec<_>>().await.expect("events");
    assert!(
        events.iter().all(|e| !matches!(e, WatchEvent::Bookmark(_))),
        "{events:?}"
    );
}

#[tokio::test]
async fn too_old_resource_version_is_410_gone() {
    let bed = start_with(KubeOptions {
        history: 5,
        ..KubeOptions::default()
    })
    .await;
    let api = bed.widgets("default");
    let first = api
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .expect("create");
    for size in 2..12 {
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": size}})),
        )
        .await
        .expect("patch");
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv(&first))
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("in time")
    {
        Some(Ok(WatchEvent::Error(e))) => {
            assert_eq!(e.code, 410);
            assert!(
                e.message.contains("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // A recent version still resumes.
    let latest = api.get("a").await.expect("get");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 50}})),
    )
    .await
    .expect("patch");
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv(&latest))
        .await
        .expect("watch")
        .boxed();
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("in time");
    assert!(
        matches!(next, Some(Ok(WatchEvent::Modified(_)))),
        "{next:?}"
    );
}

#[tokio::test]
async fn selector_watch_sees_objects_enter_and_leave() {
    let bed = start().await;
    let api = bed.widgets("default");
    let base = api
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .expect("create");
    let stream = api
        .watch(
            &WatchParams::default().timeout(2).labels("team=x"),
            &rv(&base),
        )
        .await
        .expect("watch");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
    )
    .await
    .expect("label");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "y"}}})),
    )
    .await
    .expect("relabel");
    let events: Vec<_> = tokio::time::timeout(
        Duration::from_secs(5),
        stream.take(2).try_collect::<Vec<_>>(),
    )
    .await
    .expect("in time")
    .expect("events");
    assert!(matches!(events[0], WatchEvent::Added(_)), "{events:?}");
    assert!(matches!(events[1], WatchEvent::Deleted(_)), "{events:?}");
}

#[tokio::test]
async fn runtime_watcher_works_with_list_watch_and_streaming_lists() {
    use kube::runtime::watcher::{self, Event};
    let bed = start().await;
    let api = bed.widgets("default");
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &widget(name, json!({"size": 1})))
            .await
            .expect("create");
    }
    let configs = [
        watcher::Config::default().page_size(2),
        watcher::Config::default().streaming_lists(),
    ];
    for (i, config) in configs.into_iter().enumerate() {
        let mut stream = watcher::watcher(api.clone(), config).boxed();
        let mut initial = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("in time")
            {
                Some(Ok(Event::InitApply(o))) => initial.push(o.metadata.name.unwrap_or_default()),
                Some(Ok(Event::InitDone)) => break,
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        initial.sort();
        assert_eq!(initial, vec!["a", "b", "c"]);
        let name = format!("late-{i}");
        api.create(&PostParams::default(), &widget(&name, json!({"size": 2})))
            .await
            .expect("create");
        let applied = loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("in time")
            {
                Some(Ok(Event::Apply(o))) => break o.metadata.name.unwrap_or_default(),
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(applied, name);
        api.delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
    }
}

#[tokio::test]
async fn fault_injection_ends_every_watch_and_a_resumed_watch_misses_nothing() {
    let bed = start_with(KubeOptions {
        watch_drop_every: Some(Duration::from_millis(500)),
        ..KubeOptions::default()
    })
    .await;
    let api = bed.widgets("default");
    let a = api
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .expect("create");
    // Asked for 60 s, the watch still ends at the injected drop.
    let stream = api
        .watch(&WatchParams::default().timeout(60), &rv(&a))
        .await
        .expect("watch");
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>()).await;
    assert!(
        ended.is_ok_and(|events| events.is_empty()),
        "the watch ended at the drop with no events"
    );
    // A change made while no watch is open arrives on the re-watch from the last version.
    api.create(&PostParams::default(), &widget("b", json!({"size": 1})))
        .await
        .expect("create");
    let events: Vec<_> = api
        .watch(&WatchParams::default().timeout(60), &rv(&a))
        .await
        .expect("watch")
        .try_collect()
        .await
        .expect("events");
    assert!(
        matches!(events.as_slice(), [WatchEvent::Added(o)] if o.metadata.name.as_deref() == Some("b")),
        "{events:?}"
    );
}

#[tokio::test]
async fn fault_injection_answers_lists_of_one_resource_late_and_nothing_else() {
    let delay = Duration::from_secs(2);
    let bed = start_with(KubeOptions {
        slow_lists: vec![("widgets".into(), delay)],
        ..KubeOptions::default()
    })
    .await;
    let api = bed.widgets("default");
    let a = api
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .expect("create");
    let started = tokio::time::Instant::now();
    let listed = api.list(&Default::default()).await.expect("list");
    assert!(started.elapsed() >= delay, "the LIST waited the delay");
    assert_eq!(listed.items.len(), 1, "and then answered in full");
    // A GET of the same resource and a LIST of another one are not held.
    let fast = tokio::time::timeout(delay * 3 / 4, async {
        api.get("a").await.expect("get");
        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(bed.client.clone())
            .list(&Default::default())
            .await
            .expect("namespaces");
    })
    .await;
    assert!(fast.is_ok(), "only LISTs of widgets are slow");
    // A watch is not a LIST: it opens at once.
    let opened = tokio::time::timeout(
        delay * 3 / 4,
        api.watch(&WatchParams::default().timeout(1), &rv(&a)),
    )
    .await;
    assert!(
        opened.is_ok_and(|w| w.is_ok()),
        "the watch opened without the delay"
    );
}
