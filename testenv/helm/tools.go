//go:build tools

// Package tools pins Helm's command so `go build helm.sh/helm/v4/cmd/helm` builds the
// chart tests' helm from this module's go.sum.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
