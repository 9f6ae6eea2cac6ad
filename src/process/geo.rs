//! Where the browser is, coarsely: the client's address looked up in a MaxMind database.
//!
//! Optional (`[geo] database`, a GeoIP2/GeoLite2 City or Country `.mmdb` file read once at
//! start-up). The address itself never leaves the bridge (see [`super::client_ip`]); what
//! leaves are the semantic-convention attributes `geo.continent.code`, `geo.country.iso_code`,
//! `geo.region.iso_code` (the largest subdivision, as `<country>-<code>`) and
//! `geo.locality.name` (the English city name). Coordinates and postal codes are not exported:
//! they locate a person more precisely than RUM needs.
//!
//! A lookup is a walk of the database's search tree plus a few borrowed strings: well under a
//! microsecond, no allocation beyond the attribute values.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{geoip2, Reader};

/// `geo.continent.code`.
pub const CONTINENT: &str = "geo.continent.code";
/// `geo.country.iso_code`.
pub const COUNTRY: &str = "geo.country.iso_code";
/// `geo.region.iso_code`.
pub const REGION: &str = "geo.region.iso_code";
/// `geo.locality.name`.
pub const LOCALITY: &str = "geo.locality.name";

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
#[error("geo.database `{path}`: {source}")]
pub struct GeoError {
    path: String,
    source: maxminddb::MaxMindDbError,
}

/// An opened GeoIP database.
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoIp {
    /// Reads the whole database into memory (GeoLite2 City is about 60 MB).
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        let reader = Reader::open_readfile(path).map_err(|source| GeoError {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { reader })
    }

    /// The `geo.*` attributes of `ip`, most general first; empty when the database does not
    /// know the address (private ranges, for example) or the record is unreadable.
    pub fn lookup(&self, ip: IpAddr) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let Ok(found) = self.reader.lookup(ip) else {
            return out;
        };
        let Ok(Some(city)) = found.decode::<geoip2::City>() else {
            return out;
        };
        if let Some(code) = city.continent.code {
            out.push((CONTINENT, code.to_owned()));
        }
        if let Some(country) = city.country.iso_code {
            out.push((COUNTRY, country.to_owned()));
            if let Some(region) = city.subdivisions.first().and_then(|s| s.iso_code) {
                out.push((REGION, format!("{country}-{region}")));
            }
        }
        if let Some(name) = city.city.names.english {
            out.push((LOCALITY, name.to_owned()));
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mmdb_writer::Writer;
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Named {
        names: BTreeMap<&'static str, &'static str>,
    }

    #[derive(Serialize)]
    struct Coded {
        iso_code: &'static str,
    }

    #[derive(Serialize)]
    struct Continent {
        code: &'static str,
    }

    #[derive(Serialize)]
    struct CityRecord {
        continent: Continent,
        country: Coded,
        subdivisions: Vec<Coded>,
        city: Named,
    }

    /// A small City database: 203.0.113.0/24 is Lyon (FR-ARA), 2001:db8::/32 is Osaka
    /// (JP-27, no city name); nothing else is known.
    pub(crate) fn test_database(path: &Path) {
        let mut writer = Writer::new("GeoIP2-City");
        let lyon = CityRecord {
            continent: Continent { code: "EU" },
            country: Coded { iso_code: "FR" },
            subdivisions: vec![Coded { iso_code: "ARA" }],
            city: Named {
                names: BTreeMap::from([("en", "Lyon"), ("fr", "Lyon")]),
            },
        };
        writer
            .insert("203.0.113.0/24".parse::<ipnet::IpNet>().unwrap(), &lyon)
            .unwrap();
        #[derive(Serialize)]
        struct NoCity {
            continent: Continent,
            country: Coded,
            subdivisions: Vec<Coded>,
        }
        let osaka = NoCity {
            continent: Continent { code: "AS" },
            country: Coded { iso_code: "JP" },
            subdivisions: vec![Coded { iso_code: "27" }],
        };
        writer
            .insert("2001:db8::/32".parse::<ipnet::IpNet>().unwrap(), &osaka)
            .unwrap();
        std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn known_addresses_get_coarse_geo_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("city.mmdb");
        test_database(&path);
        let geo = GeoIp::open(&path).unwrap();
        assert_eq!(
            geo.lookup("203.0.113.77".parse().unwrap()),
            [
                (CONTINENT, "EU".to_owned()),
                (COUNTRY, "FR".to_owned()),
                (REGION, "FR-ARA".to_owned()),
                (LOCALITY, "Lyon".to_owned()),
            ]
        );
        assert_eq!(
            geo.lookup("2001:db8:1::5".parse().unwrap()),
            [
                (CONTINENT, "AS".to_owned()),
                (COUNTRY, "JP".to_owned()),
                (REGION, "JP-27".to_owned()),
            ]
        );
        assert!(geo.lookup("198.51.100.1".parse().unwrap()).is_empty());
        assert!(geo.lookup("::1".parse().unwrap()).is_empty());
    }

    #[test]
    fn an_unreadable_database_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.mmdb");
        std::fs::write(&path, b"not a database").unwrap();
        let err = GeoIp::open(&path).unwrap_err().to_string();
        assert!(err.starts_with("geo.database `"), "{err}");
        assert!(GeoIp::open(&dir.path().join("missing.mmdb")).is_err());
    }
}
