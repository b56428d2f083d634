# KD dashboard: the web server with its embedded worker (one per visible GPU, else one on the CPU).
#   docker build -t kd-dashboard .
#   docker run --gpus all -p 8000:8000 -v kd-db:/var/lib/kd/db -v kd-data:/var/lib/kd/data \
#              -v kd-runs:/var/lib/kd/runs kd-dashboard
# Bound to 0.0.0.0 without KD_API_TOKEN, the server generates a token at each start and prints the
# sign-in URL (docker logs); pass -e KD_API_TOKEN=... to choose one, -e KD_ALLOWED_HOSTS=name for DNS names.
# The base image already holds CUDA, PyTorch and torchvision, so pip keeps them.
# With Ray, the same image is every machine of a cluster (README, "Scale out"); host networking, for Ray's ports:
#   head:   docker run --network host -v kd-db:/var/lib/kd/db -v kd-runs:/var/lib/kd/runs kd-dashboard \
#             sh -c 'ray start --head --port=6379 --num-gpus=0 && exec kd serve --host 0.0.0.0 --executor ray --ray-address 127.0.0.1:6379'
#   GPUs:   docker run --gpus all --network host -v kd-data:/var/lib/kd/data kd-dashboard \
#             ray start --address=HEAD:6379 --block
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    KD_DB_URL=sqlite:////var/lib/kd/db/kd.sqlite \
    KD_DATA_DIR=/var/lib/kd/data \
    KD_RUNS_DIR=/var/lib/kd/runs

WORKDIR /opt/kd
# Dependencies first, so that code changes do not reinstall them.
COPY pyproject.toml README.md ./
COPY kdcore/__init__.py kdcore/__init__.py
COPY app/__init__.py app/__init__.py
RUN pip install -e '.[ray]'
COPY kdcore kdcore
COPY app app
COPY templates templates
COPY static static

RUN mkdir -p /var/lib/kd/db /var/lib/kd/data /var/lib/kd/runs
VOLUME ["/var/lib/kd/db", "/var/lib/kd/data", "/var/lib/kd/runs"]
EXPOSE 8000
CMD ["kd", "serve", "--host", "0.0.0.0"]
