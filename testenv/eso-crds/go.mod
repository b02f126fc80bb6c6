module courier.dev/testenv/eso-crds

go 1.26

// External Secrets Operator's release whose CustomResourceDefinitions the chart ships
// (charts/courier/files/eso-crds) and the --from-cluster tests install. Only the module's
// files are used (config/crds/bases); nothing is built. testenv/eso-crds.sh copies them.
require github.com/external-secrets/external-secrets v1.3.2
