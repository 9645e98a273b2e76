//! What the operator would do for an accepted object, in words a reviewer can check, and the
//! DNS records that are known before SES is asked.

use super::ObjectReport;
use crate::crd::email_settings::{Authentication, Delivery, ExternalSmtp};
use crate::crd::sender_identity::{DeletionPolicy, DnsProvider};
use crate::crd::{EmailSettings, SenderIdentity, SenderPolicy};
use crate::dns;
use crate::names::{DomainName, EmailAddress, IdentityName};
use crate::policy::{self, Verdict};

/// What a SenderPolicy in the policy namespace grants.
pub fn for_policy(policy: &SenderPolicy, report: &mut ObjectReport) {
    let spec = &policy.spec;
    let mut who: Vec<String> = spec.namespaces.clone();
    if let Some(selector) = &spec.namespace_selector {
        let described = serde_json::to_string(selector).unwrap_or_default();
        who.push(format!("the namespaces selected by {described}"));
    }
    let domains = spec.domains.join(", ");
    report.actions.push(format!(
        "grant {domains} (and their subdomains) to {}: only granted namespaces may verify them or send from them",
        who.join(", ")
    ));
    if spec.share_identities {
        report.actions.push(format!(
            "let those namespaces share one SES identity of {domains}"
        ));
    }
    if spec.default_relay {
        report.actions.push(format!(
            "let those namespaces use the default relay with a from address in {domains}"
        ));
    }
}

/// Actions for an EmailSettings; `admitted` are the namespace's admitted SenderIdentities.
pub fn for_settings(
    es: &EmailSettings,
    admitted: &[(&SenderIdentity, &Verdict)],
    report: &mut ObjectReport,
) {
    let ns = &report.namespace;
    let secret = format!("Secret {ns}/{}", es.output_secret_name());
    let from = &es.spec.from;
    let every = es.spec.revalidate_every.as_deref().unwrap_or("24h");
    match es.spec.delivery {
        Delivery::Default => {
            report.actions.push(format!(
                "test the operator's default relay with MAIL FROM:<{from}> (fails with DefaultRelayNotConfigured if the operator has none)"
            ));
            report
                .actions
                .push(format!("publish {secret} once the test passes"));
        }
        Delivery::ExternalSmtp => {
            if let Some(smtp) = &es.spec.external_smtp {
                report.actions.push(connection_test(smtp, from));
                report.actions.push(format!(
                    "publish {secret} (host, port, username, password, from, tls, url) once the test passes; a failed test leaves the published Secret unchanged"
                ));
                report.notes.extend(crate::smtp::provider_hints(&smtp.host));
            }
        }
        Delivery::AdvancedSmtp => {
            if let Some(ses) = &es.spec.advanced_smtp {
                let region = &ses.region;
                if let Some(creds) = &ses.smtp_credentials_secret_ref {
                    report.actions.push(format!(
                        "derive the SES SMTP password for {region} from the access key in Secret {ns}/{}",
                        creds.name
                    ));
                }
                report.actions.push(format!(
                    "publish {secret} for email-smtp.{region}.amazonaws.com:587 (STARTTLS) once {from} is covered by a verified SenderIdentity"
                ));
                sender_coverage_notes(es, admitted, report);
            }
        }
    }
    report
        .actions
        .push(format!("re-test the connection every {every}"));
}

fn connection_test(smtp: &ExternalSmtp, from: &str) -> String {
    let host = &smtp.host;
    let connect = match smtp
        .socket_factory
        .as_ref()
        .and_then(|sf| sf.port.map(|p| (p, sf.fallback)))
    {
        Some((tls_port, true)) => format!(
            "connect with implicit TLS to {host}:{tls_port}, falling back to plain {host}:{}",
            smtp.port
        ),
        Some((tls_port, false)) => format!("connect with implicit TLS to {host}:{tls_port}"),
        None => format!("connect to {host}:{}", smtp.port),
    };
    let tls = if smtp.start_tls {
        ", STARTTLS (required)"
    } else {
        ""
    };
    let auth = match smtp.authentication {
        Authentication::UsernamePassword => format!(
            "AUTH as {} with the password in Secret {}[{}]",
            smtp.username,
            smtp.password_secret_ref
                .as_ref()
                .map_or("?", |r| r.name.as_str()),
            smtp.password_secret_ref
                .as_ref()
                .map_or("?", |r| r.key.as_str()),
        ),
        Authentication::OAuth2 => format!(
            "AUTH XOAUTH2 as {} with a client-credentials token from {}",
            smtp.username,
            smtp.oauth2.as_ref().map_or("?", |o| o.token_url.as_str())
        ),
    };
    format!(
        "test the connection: {connect}{tls}, {auth}, MAIL FROM:<{from}>, RSET, QUIT (nothing is sent)"
    )
}

fn sender_coverage_notes(
    es: &EmailSettings,
    admitted: &[(&SenderIdentity, &Verdict)],
    report: &mut ObjectReport,
) {
    let Ok(from) = EmailAddress::parse(&es.spec.from) else {
        return;
    };
    let name = es.metadata.name.as_deref().unwrap_or_default();
    let ids: Vec<&IdentityName> = admitted
        .iter()
        .filter(|(si, _)| si.spec.email_settings_ref.name == name)
        .filter_map(|(_, v)| match v {
            Verdict::Admitted(id) => Some(id),
            Verdict::Rejected { .. } => None,
        })
        .collect();
    if !ids.iter().any(|id| policy::covers(id, &from)) {
        report.notes.push(format!(
            "no accepted SenderIdentity among the inputs covers {from}; SenderVerified stays False until one is verified"
        ));
    } else if !ids.iter().any(|id| policy::dmarc_aligned(id, &from)) {
        report.notes.push(format!(
            "only an email identity covers {from}: mail is DKIM-signed for amazonses.com, not for {}; verify a domain identity for DMARC alignment",
            from.domain()
        ));
    }
}

/// Actions and knowable records for an admitted SenderIdentity of `es`.
pub fn for_identity(
    si: &SenderIdentity,
    id: &IdentityName,
    es: &EmailSettings,
    report: &mut ObjectReport,
) {
    let Some(ses) = &es.spec.advanced_smtp else {
        return;
    };
    let region = &ses.region;
    let via = ses
        .role_arn
        .as_ref()
        .map(|r| format!(" as role {r}"))
        .unwrap_or_default();
    match id {
        IdentityName::Domain(domain) => {
            let key = si
                .spec
                .dkim
                .as_ref()
                .map(|d| d.key_length)
                .unwrap_or_default();
            report.actions.push(format!(
                "CreateEmailIdentity {domain} in {region}{via} with Easy DKIM ({}), tagged as owned by email-operator; an existing identity without our tag is left untouched",
                key.as_str()
            ));
            report.actions.push(format!(
                "report the 3 DKIM CNAME records <token>._domainkey.{domain} once SES returns the tokens"
            ));
            report.dns_records.push(dns::spf_record(domain, None));
            if let Some(mf) = si
                .spec
                .mail_from_domain
                .as_deref()
                .and_then(|m| DomainName::parse(m).ok())
            {
                report.actions.push(format!(
                    "PutEmailIdentityMailFromAttributes {domain}: MAIL FROM {mf}"
                ));
                report
                    .dns_records
                    .extend(dns::mail_from_records(&mf, region));
            }
            if si
                .spec
                .dns
                .as_ref()
                .is_some_and(|d| d.provider == DnsProvider::ExternalDns)
            {
                report.actions.push(format!(
                    "write DNSEndpoint {}/{} with the records for external-dns",
                    report.namespace, report.name
                ));
            }
        }
        IdentityName::Email(addr) => {
            report.actions.push(format!(
                "CreateEmailIdentity {addr} in {region}{via}, tagged as owned by email-operator; SES emails a verification link valid for 24 h"
            ));
        }
    }
    if si.spec.deletion_policy == DeletionPolicy::Retain {
        report.notes.push(
            "deletionPolicy Retain: the SES identity stays when this object is deleted".into(),
        );
    }
}
