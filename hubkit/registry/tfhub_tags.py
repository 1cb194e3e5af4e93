"""The tag values tfhub.dev's card validator accepts.

tensorflow/tfhub.dev's `tools/validator.py` checks each card's `task`,
`license`, `dataset`, `language` and `network-architecture` values against the
ids in its `tags/*.yaml` files; these are those ids (display names left out),
so that a card hubkit writes or validates is one that repository accepts.
"""

TASK = (
  "audio-command-detection",
  "audio-embedding",
  "audio-event-classification",
  "audio-paralinguistics",
  "audio-pitch-extraction",
  "audio-speech-synthesis",
  "audio-stt",
  "audio-synthesis",
  "image-aesthetic-quality",
  "image-augmentation",
  "image-classification",
  "image-classification-logits",
  "image-classifier",
  "image-deblurring",
  "image-dehazing",
  "image-denoising",
  "image-depth-estimation",
  "image-deraining",
  "image-enhancement",
  "image-extrapolation",
  "image-feature-vector",
  "image-generator",
  "image-object-detection",
  "image-others",
  "image-pose-detection",
  "image-rnn-agent",
  "image-segmentation",
  "image-style-transfer",
  "image-super-resolution",
  "image-text-detection",
  "image-text-recognition",
  "text-classification",
  "text-embedding",
  "text-generation",
  "text-language-model",
  "text-preprocessing",
  "text-question-answering",
  "text-retrieval-question-answering",
  "text-segmentation",
  "text-sequence-alignment",
  "text-to-mel",
  "video-audio-text",
  "video-classification",
  "video-generation",
  "video-text",
)

LICENSE = (
  "apache-2.0",
  "bsd-2-clause",
  "bsd-3-clause",
  "cc-by-nc-4.0",
  "cddl-1.0",
  "custom",
  "epl-2.0",
  "gpl-2.0",
  "gpl-3.0",
  "lgpl-2.0",
  "lgpl-2.1",
  "lgpl-3.0",
  "mit",
  "mpl-2.0",
)

LANGUAGE = tuple(
  "ar as bg bn ca cs da de el en es et fa fi fr gu he hi hr hu id it ja ko kn ks lt lv ml mr "
  "ms multilingual ne nl no or pa pl pt ro ru sa sd sk sl sr sv ta te th tl tr uk ur vi "
  "zh-cn zh-tw".split()
)

DATASET = tuple(
  "3dmovies 1-billion-word-benchmark ade20k apolloscape audioset ava bair "
  "bair-robot-pushing-dataset bbc-xsum bdd birds-or-bicycles blendedmvs bookscorpus camvid "
  "cifar-10 cifar-100 cnn-dailymail-summarization coco-2017 cord-19 celeba celeba-hq charades "
  "chinese-treebank-6-0 cityscapes clue-web commoncrawl cppe-5 dagm2007 dakshina diml-indoor "
  "discofuse div2k google-news gigaword-summarization giga5 hrwsi idd imagenet "
  "imagenet-ilsvrc-2012-cls imagenet-21k imet-collection-2019 inaturalist inaturalist-inat-2017 "
  "inaturalist-and-plants-subset-of-imagenet-21k internal-agripredict-dataset irs isaid isprs "
  "kth kinetics-400 kinetics-600 kitti koniq-10k librilight librispeech ljspeech lsun-bedroom "
  "lol mapillary megadepth mnli multilingual-wikipedia multiple natural-questions nyu-depth-v2 "
  "noaa-pifsc-harp openimagesv4 other paq-2-piq pascal-context pascal-voc-2012 plant-village "
  "pmindia medline-pubmed redweb qnli qqp scannet silero-de silero-en silero-es spaq squad "
  "squad-2-0 sst-2 stl10 stories suim sunrgbd svhn thorsten tartanair translation twitter "
  "vgallery vkitti2 wiki40b wikipedia wikipedia-and-bookscorpus wikisplit-dataset wmt14 wmt16 "
  "wsvd youtube-8m".split()
)

NETWORK_ARCHITECTURE = tuple(
  "amoebanet-a-n18-f448 bert bigan bigbigan biggan biggan-deep bit centernet cnn conformer dan "
  "deeplab-mobilenetv2-ade20k-train deeplab-mobilenetv2-coco-voc-trainval "
  "deeplab-mobilenetv2-dm05-coco-voc-trainval deeplab-mobilenetv3-large-cityscapes-trainfine "
  "deeplab-xception65-ade20k-train deeplab-xception65-cityscapes-trainfine "
  "deeplab-xception65-coco-voc-trainaug delf efficientdet efficientnet efficientnet-b0 "
  "efficientnet-b1 efficientnet-b2 efficientnet-b3 efficientnet-b4 efficientnet-b5 "
  "efficientnet-b6 efficientnet-b7 efficientnet-v2 elmo fastdepth faster-r-cnn gan i3d "
  "inception-resnet-v2 inception-v1 inception-v2 inception-v3 inception-v4 keywordspottingnet "
  "mask-r-cnn midas mobilebert-uncased-l-24-h-128-b-512-a-4-f-4-opt mobilenet mobilenet-v1 "
  "mobilenet-v2 mobilenet-v3 movinet multiband-melgan multiple nasnet-a-large nasnet-a-mobile "
  "nnlm other pnasnet-5-large progressive-gan regnety reqa resnet resnet-152 resnet-cifar "
  "resnet-v1-101 resnet-v1-152 resnet-v1-200 resnet-v1-50 resnet-v2-101 resnet-v2-152 "
  "resnet-v2-50 resnet101-v2 resnet101x3-v2 resnet152x4-v2 resnet19 resnet50-v2 resnet50x3-v2 "
  "retinanet rnn s3d s3d-g silero-stt ssd ssd-mobilenet-v1 ssd-mobilenet-v2 swin-transformer "
  "swivel tacotron2 transformer transformer-xl tsm-resnet50 tsm-resnet50x2 tvn-1 tvn-2 tvn-3 "
  "tvn-mobile-1 ulmfit unet vae vgg-style videoflow vit wae wav2vec2 wide-resnet-40-8 "
  "word2vec-skip-gram wrn-106 yolo-v5".split()
)

# Card key -> its allowed values.
BY_KEY = {
  "task": TASK,
  "license": LICENSE,
  "language": LANGUAGE,
  "dataset": DATASET,
  "network-architecture": NETWORK_ARCHITECTURE,
}
