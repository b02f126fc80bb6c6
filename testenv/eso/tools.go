//go:build tools

// Package tools pins ESO's controller command (the module's root package, main.go) so
// `go build github.com/external-secrets/external-secrets` builds it from this go.sum.
package tools

import _ "github.com/external-secrets/external-secrets"
