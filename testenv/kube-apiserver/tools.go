//go:build tools

// Package tools pins the kube-apiserver and kubectl main packages so `go mod tidy` keeps
// every module they need; build.sh builds them with `go build`.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
