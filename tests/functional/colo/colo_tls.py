"""Certificates for the COLO TLS tests, made with certtool (gnutls-bin).

Each side of a pair is a TLS server for some channels and a client for the
others (the secondary serves the migration and the NBD export; the primary
serves the proxy chardevs the secondary connects to), so each side gets one
certificate usable both ways, for 127.0.0.1, and one directory laid out as
QEMU's tls-creds-x509 wants it for either endpoint.
"""

import os
import subprocess

VALID = "expiration_days = 30\n"
# Over before the test runs: a peer that kept an old certificate.
EXPIRED = ('activation_date = "2020-01-01 00:00:00 UTC"\n'
           'expiration_date = "2020-02-01 00:00:00 UTC"\n')


def certtool(*args, template=None, cwd):
    cmd = ["certtool", "--key-type", "ecdsa"] + list(args)
    if template is not None:
        path = os.path.join(cwd, "template.info")
        with open(path, "w") as f:
            f.write(template)
        cmd += ["--template", path]
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        raise RuntimeError(f"certtool {' '.join(args)} failed:\n{r.stdout}")


class Authority:
    """A certificate authority in @root/@name."""

    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.key = os.path.join(self.dir, "ca-key.pem")
        self.cert = os.path.join(self.dir, "ca-cert.pem")
        certtool("--generate-privkey", "--outfile", self.key, cwd=self.dir)
        certtool("--generate-self-signed", "--load-privkey", self.key,
                 "--outfile", self.cert, cwd=self.dir,
                 template=f'cn = "{name}"\nca\ncert_signing_key\n' + VALID)

    def issue(self, root, name, cn, expired=False, ip="127.0.0.1"):
        """A directory for tls-creds-x509: this authority's certificate
        and a certificate for @cn at address @ip signed by it, for both
        endpoints."""
        d = os.path.join(root, name)
        os.makedirs(d)
        key = os.path.join(d, "server-key.pem")
        cert = os.path.join(d, "server-cert.pem")
        certtool("--generate-privkey", "--outfile", key, cwd=d)
        certtool("--generate-certificate", "--load-privkey", key,
                 "--load-ca-certificate", self.cert,
                 "--load-ca-privkey", self.key, "--outfile", cert, cwd=d,
                 template=(f'cn = "{cn}"\nip_address = "{ip}"\n'
                           'dns_name = "localhost"\ntls_www_server\n'
                           'tls_www_client\nsigning_key\nencryption_key\n' +
                           (EXPIRED if expired else VALID)))
        os.remove(os.path.join(d, "template.info"))
        for pem in ("key", "cert"):
            os.link(os.path.join(d, f"server-{pem}.pem"),
                    os.path.join(d, f"client-{pem}.pem"))
        os.link(self.cert, os.path.join(d, "ca-cert.pem"))
        return d


class TlsPair:
    """Which credentials each side of a ColoPair loads, and whose name it
    accepts from its peer."""

    def __init__(self, primary_dir, secondary_dir, primary_cn="primary",
                 secondary_cn="secondary", sanity_check=True):
        self.dirs = {"primary": primary_dir, "secondary": secondary_dir}
        self.peer_cn = {"primary": secondary_cn, "secondary": primary_cn}
        # Off only to let a side load a certificate that QEMU would refuse
        # to use at all (expired): the peer must refuse it too.
        self.sanity = "" if sanity_check else ",sanity-check=off"

    def qemu_args(self, side):
        d = self.dirs[side]
        return [
            "-object", f"tls-creds-x509,id=tls-server,endpoint=server,dir={d},"
                       f"verify-peer=on{self.sanity}",
            "-object", f"tls-creds-x509,id=tls-client,endpoint=client,dir={d}"
                       f"{self.sanity}",
            "-object", f"authz-simple,id=tls-peer,"
                       f"identity=CN={self.peer_cn[side]}",
        ]
