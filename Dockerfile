# Multi-stage build: a release binary built on Debian, run as a non-root user on distroless.
# Build: docker build -t pipeguard .
# Run:   docker run -p 8080:8080 -e PIPEGUARD_DATABASE_URL=postgres://… pipeguard
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY traces traces
COPY docs docs
RUN cargo build --release --locked --bin pipeguard \
 && install -D target/release/pipeguard /out/pipeguard \
 && install -d -o 65532 -g 65532 /out/data

# cc-debian12 carries glibc and libgcc, which the binary links against; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/pipeguard /usr/local/bin/pipeguard
COPY --from=build --chown=65532:65532 /out/data /var/lib/pipeguard
USER 65532:65532
WORKDIR /var/lib/pipeguard
# Listen on all interfaces inside the container; serve refuses to start on a non-loopback
# address while a configured platform has no webhook secret.
ENV PIPEGUARD_LISTEN=0.0.0.0:8080 \
    PIPEGUARD_DATABASE_URL=sqlite:///var/lib/pipeguard/pipeguard.db
EXPOSE 8080
VOLUME ["/var/lib/pipeguard"]
ENTRYPOINT ["/usr/local/bin/pipeguard"]
CMD ["serve"]
