use super::*;
use serde_json::json;

/// A Ready domain identity as the operator writes it, with DKIM tokens that differ from the
/// typical objects' (random, as SES makes them).
fn ready_identity() -> serde_json::Value {
    let records: Vec<_> = ["kq3vbv6dxk5ahw7i3q2rkzqnnxgwkdjq", "zu4vd2cmpf6xvv6y7nqb3xwb7fmqv2lq", "t5ralfn5aqqrpzsnaxsu2g6okctl7mqq"]
        .iter()
        .map(|t| {
            json!({"name": format!("{t}._domainkey.d42.bench.example"), "type": "CNAME",
                   "value": format!("{t}.dkim.amazonses.com"), "purpose": "DKIM", "published": true})
        })
        .collect();
    json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderIdentity",
        "metadata": {"name": "d42", "namespace": "t7", "uid": "3f0c2a14-92b5-4d6e-b0a8-5e1f7c9d2b31",
                     "resourceVersion": "918273", "generation": 2,
                     "creationTimestamp": "2026-12-07T10:00:00Z", "finalizers": ["email.ops.dev/ses-identity"],
                     "annotations": {"email.ops.dev/retry": "1"}},
        "spec": {"emailSettingsRef": {"name": "t7"}, "identity": "d42.bench.example", "deletionPolicy": "Delete"},
        "status": {"observedGeneration": 2, "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "d42.bench.example may be verified in SES",
             "observedGeneration": 2, "lastTransitionTime": "2026-12-07T10:00:01Z"},
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "mail may be sent from d42.bench.example",
             "observedGeneration": 2, "lastTransitionTime": "2026-12-07T10:03:09Z"}],
            "identityType": "Domain", "verificationStatus": "Success", "dkimStatus": "Success",
            "verifiedForSending": true, "dnsRecords": records, "lastCheckedTime": "2026-12-07T10:03:09Z",
            "verificationAttempts": 1, "ses": {"region": "eu-central-1"}}
    })
}

/// Objects compared as the API server would see them (the CRD types do not implement `Eq`).
fn json_of(obj: Option<impl Serialize>) -> Option<serde_json::Value> {
    obj.map(|o| serde_json::to_value(o).unwrap())
}

#[test]
fn an_identity_unpacks_to_exactly_what_was_packed() {
    let si: SenderIdentity = serde_json::from_value(ready_identity()).unwrap();
    let packed = Packed::pack(&si);
    assert_eq!(json_of(packed.get()), json_of(Some(&si)));
    assert_eq!(json_of(packed.unpack().0.ok()), json_of(Some(&si)));
    assert_eq!(packed.meta().name.as_deref(), Some("d42"));
    assert_eq!(packed.meta().namespace.as_deref(), Some("t7"));
    assert_eq!(
        packed.meta().uid,
        None,
        "the key holds the name and namespace only"
    );
}

#[test]
fn settings_unpack_to_exactly_what_was_packed() {
    let typical: Vec<EmailSettings> =
        serde_json::from_str(include_str!("email-settings.json")).unwrap();
    for mut es in typical {
        es.metadata.name = Some("other".into());
        es.spec.from = "alerts@other.example".into();
        let packed = Packed::pack(&es);
        assert_eq!(json_of(packed.get()), json_of(Some(&es)));
    }
}

#[test]
fn a_typical_identity_packs_into_a_fraction_of_its_json() {
    let si: SenderIdentity = serde_json::from_value(ready_identity()).unwrap();
    let json = serde_json::to_vec(&si).unwrap().len();
    let packed = Packed::pack(&si).packed_len();
    // The JSON is ~1.6 KB; what differs from the typical objects (three random tokens, the
    // uid, names, times) is ~300 bytes.
    assert!(packed * 3 < json, "{packed} bytes packed of {json}");
}

#[test]
fn a_malformed_identity_stays_as_it_came() {
    let mut bad = ready_identity();
    bad["spec"]["identity"] = json!(42);
    let guard: DeserializeGuard<SenderIdentity> = serde_json::from_value(bad).unwrap();
    let packed = Packed::pack_guard(&guard);
    assert!(packed.get().is_none());
    assert!(!packed.is_valid());
    let unpacked = packed.unpack().0.unwrap_err();
    assert_eq!(unpacked.error, guard.0.unwrap_err().error);
    assert_eq!(
        unpacked.metadata.uid.as_deref(),
        Some("3f0c2a14-92b5-4d6e-b0a8-5e1f7c9d2b31")
    );
    assert_eq!(packed.meta().name.as_deref(), Some("d42"));
}

#[test]
fn read_as_the_object_it_packs() {
    let packed: Packed<SenderIdentity> = serde_json::from_value(ready_identity()).unwrap();
    let si: SenderIdentity = serde_json::from_value(ready_identity()).unwrap();
    assert_eq!(json_of(packed.get()), json_of(Some(&si)));
    assert_eq!(Packed::<SenderIdentity>::kind(&()), "SenderIdentity");
    assert_eq!(Packed::<EmailSettings>::plural(&()), "emailsettings");
}

#[test]
fn an_identity_keeps_what_the_bulk_re_check_reads_unpacked() {
    let si: SenderIdentity = serde_json::from_value(ready_identity()).unwrap();
    let packed = Packed::pack(&si);
    let summary = packed.summary().as_ref().expect("a status with a location");
    assert_eq!(Some(summary), recorded(&si).as_ref());
    assert_eq!(&*summary.identity, "d42.bench.example");
    let mut bad = ready_identity();
    bad["spec"]["identity"] = json!(42);
    let guard: DeserializeGuard<SenderIdentity> = serde_json::from_value(bad).unwrap();
    assert_eq!(Packed::pack_guard(&guard).summary(), &None);
}
