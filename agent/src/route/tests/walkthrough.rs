//! The walkthrough's Step 4b manifest, byte for byte.

use http::Request;

use super::Req;
use crate::route::{
    apply_request, compile, pick_destination, RouteResult, RouteTable, VirtualServiceSpec,
};

const STEP_4B: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
  namespace: istio-egress
spec:
  hosts:
  - httpbin.org
  http:
  - route:
    - destination:
        host: httpbin.org
      headers:
        request:
          add:
            my-added-header: added-value
"#;

#[test]
fn step_4b_adds_the_request_header() {
    let doc: serde_yaml::Value = serde_yaml::from_str(STEP_4B).unwrap();
    let spec: VirtualServiceSpec = serde_yaml::from_value(doc["spec"].clone()).unwrap();
    let vs = compile(
        doc["metadata"]["namespace"].as_str().unwrap(),
        doc["metadata"]["name"].as_str().unwrap(),
        &spec,
    )
    .unwrap();
    let table = RouteTable::new(vec![std::sync::Arc::new(vs)]);
    for path in ["/get", "/headers", "/post"] {
        let req = Req::get(path);
        let RouteResult::Matched(m) = table.route_http("httpbin.org", &req.view()) else {
            panic!("{path} not routed");
        };
        assert_eq!(m.route.virtual_service, "istio-egress/httpbin");
        let dest = pick_destination(m.route, 7).unwrap();
        assert_eq!((dest.host.as_str(), dest.port), ("httpbin.org", None));
        let (mut parts, ()) = Request::get(path)
            .header("host", "httpbin.org")
            .body(())
            .unwrap()
            .into_parts();
        apply_request(&m, Some(dest), &mut parts).unwrap();
        assert_eq!(parts.headers.get("my-added-header").unwrap(), "added-value");
        assert_eq!(parts.headers.get("host").unwrap(), "httpbin.org");
        assert_eq!(parts.uri, path);
    }
    // Deleting the VirtualService restores the default route.
    let empty = RouteTable::new(vec![]);
    assert!(matches!(
        empty.route_http("httpbin.org", &Req::get("/get").view()),
        RouteResult::NoVirtualService
    ));
}
