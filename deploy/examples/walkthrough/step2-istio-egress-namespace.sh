# Step 2's namespace commands, as in the walkthrough (kubectl -> egret).
egret create namespace istio-egress
egret label ns istio-egress istio.io/dataplane-mode=ambient
egret label ns istio-egress istio.io/use-waypoint=egress-waypoint
