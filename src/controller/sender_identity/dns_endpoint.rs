//! `dns.provider: ExternalDNS`: the operator owns a `DNSEndpoint` (externaldns.k8s.io/v1alpha1,
//! named like the SenderIdentity) holding the DKIM CNAMEs — and, with `includeTxtAndMx`, the
//! SPF TXT and MAIL FROM MX/TXT records, which external-dns publishes only when started with
//! `--managed-record-types` including TXT and MX. The owner reference lets the cluster's garbage
//! collector delete it with the SenderIdentity.

use crate::crd::SenderIdentity;
use crate::crd::sender_identity::{DnsProvider, DnsRecord};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};

/// The DNSEndpoint resource.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("externaldns.k8s.io", "v1alpha1", "DNSEndpoint"),
        "dnsendpoints",
    )
}

/// Why the DNSEndpoint cannot be written, when it is not for the moment: the reason and what
/// to do. `None` for any other error (retried as a failed reconcile).
pub fn unavailable(err: &kube::Error) -> Option<(&'static str, String)> {
    use crate::crd::conditions::reasons;
    match err {
        kube::Error::Api(s) if s.code == 404 => Some((
            reasons::DNS_ENDPOINT_CRD_NOT_INSTALLED,
            "dns.provider is ExternalDNS, but the DNSEndpoint CRD (dnsendpoints.externaldns.k8s.io, installed with external-dns's CRD source) is not installed: install it, or publish the records in status.dnsRecords yourself and set dns.provider: None".into(),
        )),
        kube::Error::Api(s) if s.code == 403 => Some((
            reasons::DNS_ENDPOINT_FORBIDDEN,
            "dns.provider is ExternalDNS, but the operator may not write DNSEndpoints (with the Helm chart, set externalDns.enabled=true): grant it, or publish the records in status.dnsRecords yourself and set dns.provider: None".into(),
        )),
        _ => None,
    }
}

/// Whether the SenderIdentity asks for a DNSEndpoint.
pub fn wanted(si: &SenderIdentity) -> bool {
    si.spec
        .dns
        .as_ref()
        .is_some_and(|d| d.provider == DnsProvider::ExternalDns)
}

/// The DNSEndpoint the SenderIdentity should own, or None when ExternalDNS is not asked for.
pub fn desired(si: &SenderIdentity, records: &[DnsRecord]) -> Option<Value> {
    let dns = si
        .spec
        .dns
        .as_ref()
        .filter(|d| d.provider == DnsProvider::ExternalDns)?;
    let endpoints: Vec<Value> = records
        .iter()
        .filter(|r| r.type_ == "CNAME" || dns.include_txt_and_mx)
        .map(|r| json!({"dnsName": r.name, "recordType": r.type_, "targets": [r.value], "recordTTL": 3600}))
        .collect();
    let owner = si.controller_owner_ref(&())?;
    Some(json!({
        "apiVersion": "externaldns.k8s.io/v1alpha1",
        "kind": "DNSEndpoint",
        "metadata": {
            "name": si.name_any(),
            "namespace": si.namespace(),
            "labels": {"app.kubernetes.io/managed-by": "email-operator"},
            "ownerReferences": [owner],
        },
        "spec": {"endpoints": endpoints},
    }))
}

/// Applies the desired DNSEndpoint, or deletes ours when ExternalDNS is no longer asked for —
/// or no longer `allowed` (no SenderPolicy lets the namespace publish the domain's records).
///
/// Without a provider, the one we may own is looked for only when `spec_changed` (the
/// provider was switched off since the last look): a GET per record change would cost
/// thousands of requests while identities converge, for nothing.
pub async fn reconcile(
    client: &Client,
    si: &SenderIdentity,
    records: &[DnsRecord],
    spec_changed: bool,
    allowed: bool,
) -> Result<(), kube::Error> {
    let ns = si.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());
    let desired = desired(si, records).filter(|_| allowed);
    let spec_changed = spec_changed || (!allowed && wanted(si));
    match desired {
        Some(obj) => {
            api.patch(
                &si.name_any(),
                &PatchParams::apply(super::super::FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await?;
        }
        None if !spec_changed => {}
        None => {
            // Only ever delete the one we own.
            if let Some(existing) = api.get_opt(&si.name_any()).await? {
                let ours = existing
                    .owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == si.meta().uid.as_ref());
                if ours {
                    api.delete(&si.name_any(), &DeleteParams::default()).await?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn si(yaml_dns: &str) -> SenderIdentity {
        let mut si: SenderIdentity = serde_saphyr::from_str(&format!(
            "apiVersion: email.ops.dev/v1alpha1\nkind: SenderIdentity\nmetadata: {{name: yourcompany-com, namespace: billing, uid: 0b6f}}\nspec:\n  emailSettingsRef: {{name: n}}\n  identity: yourcompany.com\n{yaml_dns}"
        ))
        .expect("yaml");
        si.metadata.uid = Some("0b6f".into());
        si
    }

    fn records() -> Vec<DnsRecord> {
        let r = |t: &str, n: &str, v: &str| DnsRecord {
            name: n.into(),
            type_: t.into(),
            value: v.into(),
            purpose: "x".into(),
            published: None,
        };
        vec![
            r(
                "CNAME",
                "a._domainkey.yourcompany.com",
                "a.dkim.amazonses.com",
            ),
            r(
                "TXT",
                "yourcompany.com",
                "v=spf1 mx include:amazonses.com ~all",
            ),
            r(
                "MX",
                "bounce.yourcompany.com",
                "10 feedback-smtp.us-east-1.amazonses.com",
            ),
        ]
    }

    #[test]
    fn only_external_dns_gets_an_endpoint_owned_by_the_identity() {
        assert!(desired(&si(""), &records()).is_none());
        assert!(desired(&si("  dns: {provider: None}\n"), &records()).is_none());
        let ep = desired(&si("  dns: {provider: ExternalDNS}\n"), &records()).expect("endpoint");
        assert_eq!(
            ep["metadata"]["ownerReferences"][0]["kind"],
            "SenderIdentity"
        );
        assert_eq!(ep["metadata"]["ownerReferences"][0]["uid"], "0b6f");
        assert_eq!(ep["metadata"]["ownerReferences"][0]["controller"], true);
        let eps = ep["spec"]["endpoints"].as_array().expect("endpoints");
        assert_eq!(eps.len(), 1, "only the CNAMEs by default");
        assert_eq!(eps[0]["dnsName"], "a._domainkey.yourcompany.com");
        assert_eq!(eps[0]["targets"][0], "a.dkim.amazonses.com");
        let all = desired(
            &si("  dns: {provider: ExternalDNS, includeTxtAndMx: true}\n"),
            &records(),
        )
        .expect("endpoint");
        assert_eq!(all["spec"]["endpoints"].as_array().map(Vec::len), Some(3));
    }
}
