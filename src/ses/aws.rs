//! [`SesApi`] on aws-sdk-sesv2. Credentials and endpoints come from the standard AWS chain
//! (environment, IRSA, EKS Pod Identity, profiles; `AWS_ENDPOINT_URL_SESV2` for a stand-in),
//! optionally through an assumed role. Calls go through the account+region's [`RateLimiter`];
//! the SDK's own retries are off so every attempt is paced.

use super::limiter::RateLimiter;
use super::{IdentityDetails, ListedIdentity, SesApi, SesError, VerificationStatus};
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::create_email_identity::CreateEmailIdentityOutput;
use aws_sdk_sesv2::types::{DkimSigningAttributes, DkimSigningKeyLength, Tag};
use std::sync::Arc;

/// The real SES v2 client of one account (or role) and region.
#[derive(Debug, Clone)]
pub struct AwsSes {
    client: aws_sdk_sesv2::Client,
    /// For the account id (identity ARNs) when neither configured nor implied by a role ARN.
    sts: Option<aws_sdk_sts::Client>,
    account: Arc<tokio::sync::OnceCell<String>>,
    limiter: Arc<RateLimiter>,
}

impl AwsSes {
    /// A client for `region`, through `role_arn` when given. `account_id` (the identity ARNs'
    /// account) is taken from the role ARN, else from this argument, else asked of STS.
    pub async fn new(
        region: &str,
        role_arn: Option<&str>,
        session: Option<&crate::controller::backends::RoleSession>,
        account_id: Option<&str>,
        limiter: Arc<RateLimiter>,
    ) -> Self {
        let region = aws_config::Region::new(region.to_string());
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https())
            .region(region.clone())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let config = match role_arn {
            None => base,
            Some(arn) => {
                let mut builder = aws_config::sts::AssumeRoleProvider::builder(arn)
                    .session_name("email-operator")
                    .region(region);
                if let Some(s) = session {
                    builder = builder
                        .session_name(s.session_name.clone())
                        .external_id(s.external_id.clone())
                        .tags(s.tags.clone());
                }
                let provider = builder.configure(&base).build().await;
                base.into_builder()
                    .credentials_provider(
                        aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                    )
                    .build()
            }
        };
        let known = role_arn
            .and_then(account_of_role)
            .or(account_id.map(str::to_string));
        Self {
            client: aws_sdk_sesv2::Client::new(&config),
            sts: known.is_none().then(|| aws_sdk_sts::Client::new(&config)),
            account: Arc::new(tokio::sync::OnceCell::new_with(known)),
            limiter,
        }
    }

    /// A client on an explicit SDK configuration and account (tests).
    pub fn from_conf(
        conf: aws_sdk_sesv2::Config,
        account_id: &str,
        limiter: Arc<RateLimiter>,
    ) -> Self {
        Self {
            client: aws_sdk_sesv2::Client::from_conf(conf),
            sts: None,
            account: Arc::new(tokio::sync::OnceCell::new_with(Some(
                account_id.to_string(),
            ))),
            limiter,
        }
    }
}

/// Maps an SDK error by what the caller should do about it.
fn classify<E>(err: SdkError<E, HttpResponse>) -> SesError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
    ) {
        return SesError::Unavailable(format!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        ));
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    let detail = if message.is_empty() {
        code.clone()
    } else {
        format!("{code}: {message}")
    };
    match code.as_str() {
        "NotFoundException" => SesError::NotFound,
        "AlreadyExistsException" => SesError::AlreadyExists,
        "TooManyRequestsException" | "Throttling" | "ThrottlingException" => {
            SesError::Throttled(detail)
        }
        // A quota (10,000 identities per region), not a rate: no retry, no slower pace.
        "LimitExceededException" => SesError::QuotaExceeded(detail),
        _ if status == Some(429) => SesError::Throttled(detail),
        _ if status.is_some_and(|s| s >= 500) => SesError::Unavailable(detail),
        _ => SesError::Rejected(detail),
    }
}

fn tags(tags: &[(String, String)]) -> Result<Vec<Tag>, SesError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| SesError::Rejected(e.to_string()))
        })
        .collect()
}

/// The details of an identity just created, from CreateEmailIdentity's answer and the tags
/// sent with it; `None` when the answer lacks what the status shows (a domain's three DKIM
/// tokens or their signing zone: some SES implementations leave them out). A new identity is
/// `PENDING` — SES has not yet seen its records or the click on its link — unless SES says it
/// may already send.
fn created_details(
    name: &str,
    out: &CreateEmailIdentityOutput,
    tags: Vec<(String, String)>,
) -> Option<IdentityDetails> {
    let dkim = out.dkim_attributes();
    let tokens = dkim.map(|d| d.tokens().to_vec()).unwrap_or_default();
    let zone = dkim
        .and_then(|d| d.signing_hosted_zone())
        .map(str::to_string);
    let is_domain = !name.contains('@');
    if is_domain && (tokens.len() != 3 || zone.is_none()) {
        return None;
    }
    let verified = out.verified_for_sending_status();
    Some(IdentityDetails {
        verification_status: if verified {
            VerificationStatus::Success
        } else {
            VerificationStatus::Pending
        },
        dkim_status: dkim
            .and_then(|d| d.status())
            .map(|s| VerificationStatus::from_ses(s.as_str())),
        dkim_tokens: tokens,
        signing_hosted_zone: zone,
        verified_for_sending: verified,
        mail_from_domain: None,
        mail_from_status: None,
        next_key_length: dkim
            .and_then(|d| d.next_signing_key_length())
            .map(|l| l.as_str().to_string()),
        tags,
    })
}

/// The HTTPS client of every AWS call (SES, STS, credential providers): rustls on ring with
/// the platform's roots, the one TLS stack the operator links.
pub fn https() -> aws_sdk_sesv2::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

fn key_length(s: &str) -> DkimSigningKeyLength {
    DkimSigningKeyLength::from(s)
}

impl SesApi for AwsSes {
    fn turn(&self, namespace: &str, id: &str) -> super::turns::Turn {
        self.limiter.turn(namespace, id)
    }

    fn busy(&self) -> bool {
        self.limiter.busy()
    }

    async fn create_identity(
        &self,
        name: &str,
        tag_list: &[(String, String)],
        length: Option<&str>,
    ) -> Result<Option<IdentityDetails>, SesError> {
        let sent = tag_list.to_vec();
        let tag_list = tags(tag_list)?;
        let out = self
            .limiter
            .call("CreateEmailIdentity", || {
                let mut req = self
                    .client
                    .create_email_identity()
                    .email_identity(name)
                    .set_tags(Some(tag_list.clone()));
                if let Some(l) = length {
                    req = req.dkim_signing_attributes(
                        DkimSigningAttributes::builder()
                            .next_signing_key_length(key_length(l))
                            .build(),
                    );
                }
                async move { req.send().await.map_err(classify) }
            })
            .await?;
        Ok(created_details(name, &out, sent))
    }

    async fn get_identity(&self, name: &str) -> Result<IdentityDetails, SesError> {
        let out = self
            .limiter
            .call("GetEmailIdentity", || {
                let req = self.client.get_email_identity().email_identity(name);
                async move { req.send().await.map_err(classify) }
            })
            .await?;
        let dkim = out.dkim_attributes();
        Ok(IdentityDetails {
            verification_status: out
                .verification_status()
                .map(|s| VerificationStatus::from_ses(s.as_str()))
                .unwrap_or(VerificationStatus::NotStarted),
            dkim_status: dkim
                .and_then(|d| d.status())
                .map(|s| VerificationStatus::from_ses(s.as_str())),
            dkim_tokens: dkim.map(|d| d.tokens().to_vec()).unwrap_or_default(),
            signing_hosted_zone: dkim
                .and_then(|d| d.signing_hosted_zone())
                .map(str::to_string),
            verified_for_sending: out.verified_for_sending_status(),
            mail_from_domain: out
                .mail_from_attributes()
                .map(|m| m.mail_from_domain().to_string())
                .filter(|d| !d.is_empty()),
            mail_from_status: out
                .mail_from_attributes()
                .filter(|m| !m.mail_from_domain().is_empty())
                .map(|m| VerificationStatus::from_ses(m.mail_from_domain_status().as_str())),
            next_key_length: dkim
                .and_then(|d| d.next_signing_key_length())
                .map(|l| l.as_str().to_string()),
            tags: out
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        })
    }

    async fn list_identities(
        &self,
        next_token: Option<String>,
    ) -> Result<(Vec<ListedIdentity>, Option<String>), SesError> {
        let out = self
            .limiter
            .call("ListEmailIdentities", || {
                let req = self
                    .client
                    .list_email_identities()
                    .page_size(1000)
                    .set_next_token(next_token.clone());
                async move { req.send().await.map_err(classify) }
            })
            .await?;
        let rows = out
            .email_identities()
            .iter()
            .map(|i| ListedIdentity {
                name: i.identity_name().unwrap_or_default().to_string(),
                verification_status: i
                    .verification_status()
                    .map(|s| VerificationStatus::from_ses(s.as_str()))
                    .unwrap_or(VerificationStatus::NotStarted),
                sending_enabled: i.sending_enabled(),
            })
            .collect();
        Ok((rows, out.next_token().map(str::to_string)))
    }

    async fn get_account(&self) -> Result<super::AccountStanding, SesError> {
        let out = self
            .limiter
            .call("GetAccount", || {
                let req = self.client.get_account();
                async move { req.send().await.map_err(classify) }
            })
            .await?;
        let quota = out.send_quota();
        Ok(super::AccountStanding {
            production_access: out.production_access_enabled(),
            sending_enabled: out.sending_enabled(),
            enforcement_status: out.enforcement_status().unwrap_or("HEALTHY").to_string(),
            max_24_hour_send: quota.map_or(0.0, |q| q.max24_hour_send()),
            max_send_rate: quota.map_or(0.0, |q| q.max_send_rate()),
            sent_last_24_hours: quota.map_or(0.0, |q| q.sent_last24_hours()),
        })
    }

    async fn delete_identity(&self, name: &str) -> Result<(), SesError> {
        self.limiter
            .call("DeleteEmailIdentity", || {
                let req = self.client.delete_email_identity().email_identity(name);
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await
    }

    async fn tag_identity(
        &self,
        name: &str,
        tag_list: &[(String, String)],
    ) -> Result<(), SesError> {
        let arn = self.identity_arn(name).await?;
        let tag_list = tags(tag_list)?;
        self.limiter
            .call("TagResource", || {
                let req = self
                    .client
                    .tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(tag_list.clone()));
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await
    }

    async fn untag_identity(&self, name: &str, keys: &[String]) -> Result<(), SesError> {
        let arn = self.identity_arn(name).await?;
        self.limiter
            .call("UntagResource", || {
                let req = self
                    .client
                    .untag_resource()
                    .resource_arn(&arn)
                    .set_tag_keys(Some(keys.to_vec()));
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await
    }

    async fn put_mail_from(&self, name: &str, domain: Option<&str>) -> Result<(), SesError> {
        self.limiter
            .call("PutEmailIdentityMailFromAttributes", || {
                let req = self
                    .client
                    .put_email_identity_mail_from_attributes()
                    .email_identity(name)
                    .set_mail_from_domain(domain.map(str::to_string));
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await
    }

    async fn put_dkim_key_length(&self, name: &str, length: &str) -> Result<(), SesError> {
        self.limiter
            .call("PutEmailIdentityDkimSigningAttributes", || {
                let req = self
                    .client
                    .put_email_identity_dkim_signing_attributes()
                    .email_identity(name)
                    .signing_attributes_origin(
                        aws_sdk_sesv2::types::DkimSigningAttributesOrigin::AwsSes,
                    )
                    .signing_attributes(
                        DkimSigningAttributes::builder()
                            .next_signing_key_length(key_length(length))
                            .build(),
                    );
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await
    }
}

impl AwsSes {
    /// `arn:<partition>:ses:<region>:<account>:identity/<name>` (tagging needs the ARN).
    async fn identity_arn(&self, name: &str) -> Result<String, SesError> {
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let account = self
            .account
            .get_or_try_init(|| async {
                let sts = self
                    .sts
                    .as_ref()
                    .ok_or_else(|| SesError::Rejected("no AWS account id".into()))?;
                let out = sts.get_caller_identity().send().await.map_err(|e| {
                    SesError::Sts(format!(
                        "{}; set --aws-account-id to do without it",
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    ))
                })?;
                out.account()
                    .map(str::to_string)
                    .ok_or_else(|| SesError::Sts("the answer names no account".into()))
            })
            .await?;
        Ok(format!(
            "arn:{}:ses:{region}:{account}:identity/{name}",
            partition(&region)
        ))
    }
}

/// The account of `arn:aws:iam::123456789012:role/name`.
pub fn account_of_role(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
}

/// The ARN partition of a region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_built_from_roles_and_regions() {
        assert_eq!(
            account_of_role("arn:aws:iam::123456789012:role/ses-identities").as_deref(),
            Some("123456789012")
        );
        assert_eq!(account_of_role("arn:aws:iam::12:role/x"), None);
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("eu-west-1"), "aws");
    }

    fn answer(tokens: &[&str], zone: Option<&str>) -> CreateEmailIdentityOutput {
        let dkim = aws_sdk_sesv2::types::DkimAttributes::builder()
            .signing_enabled(true)
            .status(aws_sdk_sesv2::types::DkimStatus::Pending)
            .set_tokens(Some(tokens.iter().map(|t| t.to_string()).collect()))
            .set_signing_hosted_zone(zone.map(str::to_string))
            .next_signing_key_length(DkimSigningKeyLength::Rsa2048Bit)
            .build();
        CreateEmailIdentityOutput::builder()
            .identity_type(aws_sdk_sesv2::types::IdentityType::Domain)
            .verified_for_sending_status(false)
            .dkim_attributes(dkim)
            .build()
    }

    #[test]
    fn a_created_identity_is_described_by_the_answer_when_it_holds_the_records() {
        let tags = vec![(
            "email.ops.dev/managed-by".to_string(),
            "email-operator".to_string(),
        )];
        let d = created_details(
            "yourcompany.com",
            &answer(&["a", "b", "c"], Some("dkim.amazonses.com")),
            tags.clone(),
        )
        .expect("complete");
        assert_eq!(d.verification_status, VerificationStatus::Pending);
        assert_eq!(d.dkim_status, Some(VerificationStatus::Pending));
        assert_eq!(d.dkim_tokens, ["a", "b", "c"]);
        assert_eq!(d.signing_hosted_zone.as_deref(), Some("dkim.amazonses.com"));
        assert_eq!(d.next_key_length.as_deref(), Some("RSA_2048_BIT"));
        assert!(!d.verified_for_sending);
        assert_eq!(d.tags, tags);

        // Without the tokens or their zone a domain's records cannot be shown: read instead.
        let no_zone = answer(&["a", "b", "c"], None);
        assert_eq!(created_details("yourcompany.com", &no_zone, vec![]), None);
        let no_tokens = answer(&[], Some("dkim.amazonses.com"));
        assert_eq!(created_details("yourcompany.com", &no_tokens, vec![]), None);
        // An email address has no Easy DKIM records to show.
        let email = created_details("noreply@yourcompany.com", &no_tokens, vec![]);
        assert_eq!(
            email.map(|d| d.verification_status),
            Some(VerificationStatus::Pending)
        );
    }
}
