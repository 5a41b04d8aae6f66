# reenact for GPU machines. Build: docker build -t reenact .
# Run:   docker run --gpus all -v "$PWD/data:/data" reenact track /data/target.mp4 --out /data/target
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# ffmpeg is whatever the base image's Ubuntu release ships; pinning it would break with every base update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/reenact
COPY . .
# The same install script as the README; the image's own CUDA build of torch is kept
# (the environment sees the system packages, and no torch is installed over it).
RUN REENACT_VENV=/opt/venv REENACT_SYSTEM_SITE_PACKAGES=1 TORCH_SPEC="" PYTHON=python ./scripts/install.sh

RUN useradd --create-home --uid 1000 reenact && mkdir -p /data && chown reenact /data
USER 1000
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /data
ENTRYPOINT ["reenact"]
CMD ["--help"]
