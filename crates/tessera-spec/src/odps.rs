//! ODPS document → [`Product`]: the product's SQL name, domain, owner and ports.

use tessera_core::{InputPort, Name, OutputPort, Product, SupportChannel};

use crate::document::SpecDocument;
use crate::error::{Result, SpecError};
use crate::odcs::{array, description, text};

/// Converts a validated ODPS document. Tessera needs `domain` and `name` as SQL identifiers,
/// since the product's datasets are queried as `domain.product.dataset`.
pub fn product_from_document(doc: &SpecDocument) -> Result<Product> {
    let v = &doc.value;
    let mut problems = Vec::new();
    let mut name_of = |key: &str| match text(v, key) {
        None => {
            problems.push(doc.diagnostic(
                &format!("/{key}"),
                format!("Tessera needs `{key}`: the product's datasets are queried as domain.product.dataset"),
            ));
            None
        }
        Some(s) => match Name::parse_namespace(&s) {
            Ok(n) => Some(n),
            Err(e) => {
                problems.push(doc.diagnostic(&format!("/{key}"), e.to_string()));
                None
            }
        },
    };
    let domain = name_of("domain");
    let name = name_of("name");
    let output_ports = array(v, "outputPorts")
        .iter()
        .map(|p| OutputPort {
            name: text(p, "name").unwrap_or_default(),
            version: text(p, "version").unwrap_or_default(),
            contract_id: text(p, "contractId"),
            description: text(p, "description"),
        })
        .collect();
    let input_ports = array(v, "inputPorts")
        .iter()
        .map(|p| InputPort {
            name: text(p, "name").unwrap_or_default(),
            version: text(p, "version").unwrap_or_default(),
            contract_id: text(p, "contractId").unwrap_or_default(),
        })
        .collect();
    let support = array(v, "support")
        .iter()
        .map(|s| SupportChannel {
            channel: text(s, "channel").unwrap_or_default(),
            url: text(s, "url").unwrap_or_default(),
            tool: text(s, "tool"),
        })
        .collect();
    match (domain, name) {
        (Some(domain), Some(name)) if problems.is_empty() => Ok(Product {
            id: text(v, "id").unwrap_or_default(),
            domain,
            name,
            version: text(v, "version"),
            status: text(v, "status").unwrap_or_default(),
            description: description(v),
            owner: v.get("team").and_then(|t| text(t, "name")),
            output_ports,
            input_ports,
            support,
        }),
        _ => Err(SpecError::Invalid(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_need_sql_names() {
        let text = "apiVersion: v1.0.0\nkind: DataProduct\nid: p1\nstatus: active\nname: Customer Data Product\n";
        let doc = SpecDocument::parse("p.yaml", text).unwrap();
        crate::validate(&doc).unwrap();
        let err = product_from_document(&doc).unwrap_err().to_string();
        assert!(
            err.contains("p.yaml:1: domain: Tessera needs `domain`"),
            "{err}"
        );
        assert!(
            err.contains("p.yaml:5: name: invalid name \"Customer Data Product\""),
            "{err}"
        );
    }

    #[test]
    fn reserved_names_are_refused_as_domain_or_product() {
        for reserved in tessera_core::RESERVED_NAMES {
            let text = format!(
                "apiVersion: v1.0.0\nkind: DataProduct\nid: p1\nstatus: active\nname: {reserved}\ndomain: {reserved}\n"
            );
            let doc = SpecDocument::parse("p.yaml", &text).unwrap();
            crate::validate(&doc).unwrap();
            let err = product_from_document(&doc).unwrap_err().to_string();
            for (line, key) in [(5, "name"), (6, "domain")] {
                assert!(
                    err.contains(&format!(
                        "p.yaml:{line}: {key}: invalid name \"{reserved}\": is reserved"
                    )),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn products_convert_with_ports() {
        let text = "apiVersion: v1.0.0\nkind: DataProduct\nid: p1\nstatus: active\nname: engagement\ndomain: artwork_engagement\nteam:\n  name: community\noutputPorts:\n  - name: events\n    version: 1.0.0\n    contractId: events-contract\n";
        let doc = SpecDocument::parse("p.yaml", text).unwrap();
        crate::validate(&doc).unwrap();
        let p = product_from_document(&doc).unwrap();
        assert_eq!(p.domain.as_str(), "artwork_engagement");
        assert_eq!(p.owner.as_deref(), Some("community"));
        assert_eq!(
            p.output_ports[0].contract_id.as_deref(),
            Some("events-contract")
        );
    }
}
