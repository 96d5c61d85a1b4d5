//! Istio `VirtualService`: checked here with the same compiler the waypoint
//! uses, so a bad regex or duration is refused at apply time.

use serde_yaml::Value;

use super::{typed_spec, Kind, KindInfo};
use crate::config::object::{FieldError, ObjectMeta};
use crate::route::{compile, VirtualServiceSpec};

/// VirtualService `spec`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VirtualService(pub VirtualServiceSpec);

impl Kind for VirtualService {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "VirtualService",
        group: "networking.istio.io",
        versions: &["v1", "v1beta1", "v1alpha3"],
        plural: "virtualservices",
        short_names: &["vs"],
        namespaced: true,
    };

    fn parse(spec: &Value, meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        let spec: VirtualServiceSpec = typed_spec(spec)?;
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        compile(namespace, &meta.name, &spec)
            .map_err(|e| vec![FieldError::new(e.field, e.reason)])?;
        Ok(VirtualService(spec))
    }
}
