/**
 * `torch-guidance evaluate`: scores a sample run against real images with an
 * evaluation classifier (src/metrics/evaluate.ts): the step after `sample`
 * in an FD run, and how guidance methods are compared on numbers.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { ErrorCodes, isTorchGuidanceError } from '../core/errors.js';
import { readImageSet, type ImageSet, type ImageSetOptions } from '../io/image-sets.js';
import { Classifier } from '../metrics/classifier.js';
import { evaluateImages } from '../metrics/evaluate.js';
import { deviceFlag, intFlag, jsonFlag, modelFlags, parseFlags, trustFlag } from '../runs/flags.js';
import { UsageError } from '../core/usage-error.js';

const FASHION_MNIST_TEST = join(process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist', 't10k-images-idx3-ubyte.gz');

/** The column where the help's option texts start. */
const COLUMN = 22;

/** The command's --help text. */
export const evaluateHelp = `Usage: torch-guidance evaluate <samples> [options]

Scores samples against real images with an evaluation classifier: the Fréchet
distance between Gaussians fitted to the classifier's features (FD; FID is the
same with Inception's), precision and recall with k-NN manifolds
(Kynkäänniemi et al.), and, when the samples carry the labels they were
sampled for, the share the classifier puts in that class.

<samples>  a 'torch-guidance sample' output directory (its samples.npz, else
           its png/ files), an .npz with uint8 images [N, H, W(, C)] under
           arr_0 and optional int64 labels under arr_1, or an IDX image file

Options:
${modelFlags.help('classifier', COLUMN, "evaluation classifier: a card of kind 'classifier' and a features() method (default: the package's models/fashion-classifier.pt)")}
  --reference PATH    the real images, in any form <samples> takes (default:
                      the Fashion-MNIST test split, ${FASHION_MNIST_TEST};
                      apt-get install dataset-fashion-mnist, or set FASHION_MNIST_DIR)
  --k K               neighbours of the k-NN manifolds (default 3)
  --manifold-size M   most images of each set in precision/recall, evenly
                      spaced through it (default 2000; its cost is quadratic)
${deviceFlag.help(COLUMN, "the classifier's device: auto (default), cpu, cuda, cuda:N")}
${jsonFlag.help(COLUMN)}
${trustFlag.help(COLUMN)}

FD depends on the number of samples: compare runs of equal size.

Example:
  torch-guidance sample --guidance cfg:3 --count 10000 --format npz --out out/cfg3
  torch-guidance evaluate out/cfg3`;

/** Reads an image set; a path that is not one is a usage error naming the flag. */
async function imagesFrom(flag: string, path: string, size: NonNullable<ImageSetOptions['size']>): Promise<ImageSet> {
  try {
    return await readImageSet(path, { size });
  } catch (error) {
    if (isTorchGuidanceError(error) && error.code === ErrorCodes.INVALID_ARGUMENT) throw new UsageError(`${flag}: ${error.message}`);
    throw error;
  }
}

/** Runs `torch-guidance evaluate` with `argv`. */
export async function evaluateCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    {
      classifier: modelFlags.option.classifier,
      reference: { type: 'string' },
      k: { type: 'string', default: '3' },
      'manifold-size': { type: 'string', default: '2000' },
      ...deviceFlag.option,
      ...jsonFlag.option,
      ...trustFlag.option,
    } as const,
    { count: 1, what: 'give exactly one set of samples (a run directory, an .npz or an IDX file).' },
  );
  const classifierPath = modelFlags.path('classifier', values.classifier);
  const device = deviceFlag.read(values.device);
  const k = intFlag('--k', values.k, 1, 1000);
  const manifoldSize = intFlag('--manifold-size', values['manifold-size'], 1, 1_000_000);
  if (manifoldSize <= k) throw new UsageError(`--manifold-size ${manifoldSize}: needs more than --k ${k} images`);
  const referencePath = values.reference ?? FASHION_MNIST_TEST;
  if (values.reference === undefined && !existsSync(referencePath)) {
    throw new UsageError(`--reference: not given, and the default (the Fashion-MNIST test split, ${referencePath}) is not there; give --reference, or apt-get install dataset-fashion-mnist`);
  }
  const started = performance.now();
  // The classifier first: its input size bounds what the image files may declare before they are read.
  if (!existsSync(classifierPath)) throw new UsageError(`--classifier ${classifierPath}: no such file`);
  using classifier = await Classifier.load(classifierPath, { device, trust: trustFlag.read(values.trust) });
  const [channels, height, width] = classifier.card.sampleShape as [number, number, number];
  const size = { channels, height, width, takenBy: classifierPath };
  const samples = await imagesFrom('<samples>', positionals[0]!, size);
  const reference = await imagesFrom('--reference', referencePath, size);
  for (const [flag, set] of [['<samples>', samples], ['--reference', reference]] as const) {
    if (set.images.count <= k) throw new UsageError(`${flag}: ${set.source} holds ${set.images.count} image(s); the metrics need more than --k ${k}`);
  }
  const result = await evaluateImages({ classifier, samples: samples.images, labels: samples.labels, reference: reference.images, k, manifoldSize });
  const seconds = (performance.now() - started) / 1000;
  const shape = (set: ImageSet) => `${set.images.count} images ${set.images.height}×${set.images.width}×${set.images.channels}`;
  if (values.json) {
    console.log(
      JSON.stringify(
        { samples: samples.source, reference: reference.source, classifier: classifierPath, device: classifier.model.device, ...result, seconds },
        null,
        2,
      ),
    );
    return;
  }
  const labelled = samples.labels?.filter((l) => l !== null).length ?? 0;
  console.log(
    [
      `samples     ${samples.source}: ${shape(samples)}${labelled ? `, ${labelled} labelled` : ', no labels'}`,
      `reference   ${reference.source}: ${shape(reference)}`,
      `classifier  ${classifierPath} (${result.featureDim}-d features, ${classifier.model.device})`,
      `FD          ${result.fd.toFixed(3)}`,
      `accuracy    ${result.accuracy === null ? '— (the samples carry no labels)' : result.accuracy.toFixed(4)}`,
      `precision   ${result.precision.toFixed(4)}   (k-NN manifolds: k ${result.k}, ${result.manifoldSize} images of each set)`,
      `recall      ${result.recall.toFixed(4)}`,
      `time        ${seconds.toFixed(1)} s`,
    ].join('\n'),
  );
}
