# syntax=docker/dockerfile:1
# The email-operator image: a static (musl) binary on a distroless base — no shell, no package
# manager, runs as the non-root user 65532. CI builds the same static target
# (`bash .ci/static-build.sh`) so this path keeps compiling even where no Docker engine exists.
#
#   docker build -t registry.example.com/email-operator:0.1.0 .

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN PROFILE=release bash .ci/static-build.sh \
 && cp target/x86_64-unknown-linux-musl/release/email-operator /email-operator

# distroless/static: CA certificates and /etc/passwd with `nonroot`, nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /email-operator /usr/local/bin/email-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/email-operator"]
CMD ["run"]
