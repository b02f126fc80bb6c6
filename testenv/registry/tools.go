//go:build tools

// Package tools pins the CNCF Distribution registry, so the image tests push the built
// image with `skopeo copy ... docker://` to a real registry on loopback, as the README says.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
