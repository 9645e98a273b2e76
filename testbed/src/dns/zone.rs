//! The zone the test bed edits: a root zone (`.`) held in hickory's in-memory zone handler.
//!
//! Serving the root makes the server authoritative for every name, so tests can publish records
//! for any domain (`yourcompany.com`, `example.org`) without declaring zones first. The control
//! API is the only writer; each change rebuilds the affected RRset in the handler, so queries
//! see it at once. A small mirror of the records keeps listings in insertion-independent,
//! sorted order and lets deletes match values in their normalised form.

use std::collections::BTreeMap;
use std::sync::Arc;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, ZoneType};
use tokio::sync::Mutex;

use super::records::{
    DnsRecord, RecordError, normalize_name, normalize_value, parse_name, parse_type, parse_value,
};

/// Default TTL for records added without one: short, so resolvers that cache do not hide edits.
pub const DEFAULT_TTL: u32 = 5;
/// Negative-caching TTL (SOA minimum): NXDOMAIN answers expire quickly for the same reason.
const NEGATIVE_TTL: u32 = 1;

type Key = (String, RecordType);
/// (name, type) → [(value, ttl)], in insertion order per RRset.
type Records = BTreeMap<Key, Vec<(String, u32)>>;

/// The editable zone. Cheap to clone; clones share the records.
#[derive(Clone)]
pub struct Zone {
    handler: Arc<InMemoryZoneHandler>,
    // Source of truth for listings: (name, type) → [(value, ttl)].
    records: Arc<Mutex<Records>>,
}

impl Zone {
    /// An empty root zone with only its SOA record.
    pub fn new() -> Self {
        let origin = Name::root();
        let mut handler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_ascii("ns.testbed.").unwrap_or_else(|_| Name::root()),
            Name::from_ascii("hostmaster.testbed.").unwrap_or_else(|_| Name::root()),
            1,
            3600,
            600,
            86_400,
            NEGATIVE_TTL,
        );
        let mut rrset = RecordSet::with_ttl(origin.clone(), RecordType::SOA, 3600);
        rrset.insert(Record::from_rdata(origin.clone(), 3600, RData::SOA(soa)), 1);
        handler.records_get_mut().insert(
            RrKey::new(LowerName::new(&origin), RecordType::SOA),
            Arc::new(rrset),
        );
        Self {
            handler: Arc::new(handler),
            records: Arc::default(),
        }
    }

    /// The hickory zone handler, for registering in a `Catalog`.
    pub fn handler(&self) -> Arc<InMemoryZoneHandler> {
        self.handler.clone()
    }

    /// Adds a record. Values accumulate in their RRset, except `CNAME`, which holds exactly one
    /// target (a new value replaces the old one). Re-adding an existing value updates its TTL.
    pub async fn add(
        &self,
        name: &str,
        record_type: &str,
        value: &str,
        ttl: Option<u32>,
    ) -> Result<DnsRecord, RecordError> {
        let owner = parse_name(name)?;
        let rtype = parse_type(record_type)?;
        let value = normalize_value(rtype, value)?;
        let ttl = ttl.unwrap_or(DEFAULT_TTL);
        let key = (normalize_name(name), rtype);
        let mut records = self.records.lock().await;
        let values = records.entry(key.clone()).or_default();
        if rtype == RecordType::CNAME {
            values.clear();
        }
        values.retain(|(v, _)| *v != value);
        values.push((value.clone(), ttl));
        self.publish(&owner, rtype, values).await?;
        Ok(DnsRecord {
            name: key.0,
            record_type: rtype.to_string(),
            value,
            ttl,
        })
    }

    /// Removes the RRset `name`/`type`, or only `value` from it when given. Returns how many
    /// records were removed (0 when nothing matched).
    pub async fn remove(
        &self,
        name: &str,
        record_type: &str,
        value: Option<&str>,
    ) -> Result<usize, RecordError> {
        let owner = parse_name(name)?;
        let rtype = parse_type(record_type)?;
        let key = (normalize_name(name), rtype);
        let mut records = self.records.lock().await;
        let Some(values) = records.get_mut(&key) else {
            return Ok(0);
        };
        let before = values.len();
        match value {
            Some(value) => {
                let value = normalize_value(rtype, value)?;
                values.retain(|(v, _)| *v != value);
            }
            None => values.clear(),
        }
        let removed = before - values.len();
        let remaining = values.clone();
        if remaining.is_empty() {
            records.remove(&key);
        }
        self.publish(&owner, rtype, &remaining).await?;
        Ok(removed)
    }

    /// Every record, sorted by name, type and value order of insertion.
    pub async fn list(&self) -> Vec<DnsRecord> {
        let records = self.records.lock().await;
        records
            .iter()
            .flat_map(|((name, rtype), values)| {
                values.iter().map(move |(value, ttl)| DnsRecord {
                    name: name.clone(),
                    record_type: rtype.to_string(),
                    value: value.clone(),
                    ttl: *ttl,
                })
            })
            .collect()
    }

    /// Replaces the handler's RRset for `owner`/`rtype` with `values` (removes it when empty).
    async fn publish(
        &self,
        owner: &Name,
        rtype: RecordType,
        values: &[(String, u32)],
    ) -> Result<(), RecordError> {
        let key = RrKey::new(LowerName::new(owner), rtype);
        let mut rrset_data = Vec::with_capacity(values.len());
        for (value, ttl) in values {
            rrset_data.push((parse_value(rtype, value)?, *ttl));
        }
        let mut handler_records = self.handler.records_mut().await;
        if rrset_data.is_empty() {
            handler_records.remove(&key);
            return Ok(());
        }
        let min_ttl = rrset_data
            .iter()
            .map(|(_, ttl)| *ttl)
            .min()
            .unwrap_or(DEFAULT_TTL);
        let mut rrset = RecordSet::with_ttl(owner.clone(), rtype, min_ttl);
        for (data, _) in rrset_data {
            rrset.insert(Record::from_rdata(owner.clone(), min_ttl, data), 1);
        }
        handler_records.insert(key, Arc::new(rrset));
        Ok(())
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn add_list_remove() {
        let zone = Zone::new();
        zone.add(
            "A._domainkey.Example.com.",
            "cname",
            "a.dkim.amazonses.com",
            None,
        )
        .await
        .expect("add");
        zone.add(
            "a._domainkey.example.com",
            "CNAME",
            "b.dkim.amazonses.com",
            Some(60),
        )
        .await
        .expect("replace");
        zone.add("example.com", "TXT", "one", None)
            .await
            .expect("txt");
        zone.add("example.com", "TXT", "two", None)
            .await
            .expect("txt");
        let listed = zone.list().await;
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].name, "a._domainkey.example.com");
        assert_eq!(listed[0].value, "b.dkim.amazonses.com");
        assert_eq!(listed[0].ttl, 60);

        assert_eq!(zone.remove("example.com", "TXT", Some("one")).await, Ok(1));
        assert_eq!(zone.remove("example.com", "TXT", None).await, Ok(1));
        assert_eq!(zone.remove("example.com", "TXT", None).await, Ok(0));
        assert_eq!(zone.list().await.len(), 1);
        let handler = zone.handler();
        let handler_records = handler.records().await;
        // SOA plus the remaining CNAME.
        assert_eq!(handler_records.len(), 2);
    }
}
