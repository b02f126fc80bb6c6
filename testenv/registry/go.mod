module courier.dev/testenv/registry

go 1.26.8

require github.com/distribution/distribution/v3 v3.1.2
