"""lstmMNISTStarterCode.py (ELEC/COMP 576 Assignment 2, 2016) in TensorFlow 2, filled in.

The TF1 starter line by line: the same names (learningRate, trainingIters, batchSize,
displayStep, nInput, nSteps, nHidden, nClasses, weights, biases, RNN), the same
``while step * batchSize < trainingIters`` loop and the same prints. What changed is only
what TF2 requires (table in starter_ports/README.md): placeholders and feed_dict become
function arguments, ``tf.Session`` goes away, ``rnn_cell.BasicLSTMCell`` becomes
``tf.keras.layers.LSTMCell``, ``rnn.static_rnn`` becomes the loop over the steps it always
was, ``tf.split(0, nSteps, x)`` becomes ``tf.split(x, nSteps, 0)``, and
``optimizer.minimize`` becomes a ``tf.GradientTape`` step. The blanks are filled the way the
assignment asks: nHidden units of a BasicRNN/LSTM/GRU cell (``--cell``), softmax
cross-entropy, Adam.

TF1's ``tensorflow.examples.tutorials.mnist.input_data`` no longer exists; ``read_data_sets``
below gives the same ``mnist.train.next_batch`` / ``mnist.test.images`` from the
assignment's PNG folders ($TF_ASSIGN2_DATA/MNIST or --data-dir), or, when there is no such
folder, from ``tf.keras.datasets.mnist`` (the full 60k/10k MNIST, downloaded).

This file does not import the tf_assign2 package (python -m tf_assign2.mnist is the tool):

    python starter_ports/lstmMNISTStarterCode.py --data-dir ../shared/data/MNIST --cell lstm
"""

import argparse
import os
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up chatter

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

parser = argparse.ArgumentParser(description="TF2 port of the assignment's lstmMNISTStarterCode.py")
parser.add_argument("--data-dir", default=os.path.join(os.environ.get("TF_ASSIGN2_DATA", "."), "MNIST"),
                    help="folder holding Train/<class>/ImageNNNNN.png and Test/... (default "
                         "$TF_ASSIGN2_DATA/MNIST, else ./MNIST; if missing, tf.keras.datasets.mnist)")
parser.add_argument("--ntrain", type=int, default=1000, help="PNG training images per class to read (1000)")
parser.add_argument("--ntest", type=int, default=100, help="PNG test images per class to read (100)")
parser.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm",
                    help="BasicRNNCell, BasicLSTMCell or GRUCell (lstm)")
parser.add_argument("--nHidden", type=int, default=128, help="number of neurons for the RNN (128)")
parser.add_argument("--trainingIters", type=int, default=100000, help="training samples (100000)")
parser.add_argument("--batchSize", type=int, default=128, help="(128)")
parser.add_argument("--displayStep", type=int, default=10, help="print every N steps (10)")
parser.add_argument("--learningRate", type=float, default=1e-3, help="Adam learning rate (1e-3)")
parser.add_argument("--result-dir", default="./results/", help="summaries and checkpoints (./results/)")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

tf.random.set_seed(args.seed)
np.random.seed(args.seed)


def read_data_sets(data_dir, ntrain, ntest):
    """What TF1's input_data.read_data_sets('MNIST_data', one_hot=True) returned, for this data.

    Images flattened to 784 values in [0, 1], one-hot labels; ``train.next_batch(n)`` walks
    through a shuffled copy of the training set and reshuffles after each epoch, as TF1's did.
    """
    def read(split, per_class):
        images, labels = [], []
        for iclass in range(10):
            for isample in range(per_class):
                path = os.path.join(data_dir, '%s/%d/Image%05d.png' % (split, iclass, isample))
                images.append(np.asarray(Image.open(path), dtype=np.float32).reshape(-1) / 255)
                labels.append(np.eye(10, dtype=np.float32)[iclass])
        return np.stack(images), np.stack(labels)

    if os.path.isdir(os.path.join(data_dir, 'Train')):
        train_x, train_y = read('Train', ntrain)
        test_x, test_y = read('Test', ntest)
    else:
        (train_x, train_y), (test_x, test_y) = tf.keras.datasets.mnist.load_data()
        train_x, test_x = train_x.reshape(-1, 784) / np.float32(255), test_x.reshape(-1, 784) / np.float32(255)
        train_y, test_y = np.eye(10, dtype=np.float32)[train_y], np.eye(10, dtype=np.float32)[test_y]

    order = {'perm': np.random.permutation(len(train_x)), 'next': 0}

    def next_batch(batch_size):
        if order['next'] + batch_size > len(train_x):
            order['perm'], order['next'] = np.random.permutation(len(train_x)), 0
        idx = order['perm'][order['next']:order['next'] + batch_size]
        order['next'] += batch_size
        return train_x[idx], train_y[idx]

    return types.SimpleNamespace(train=types.SimpleNamespace(images=train_x, labels=train_y, next_batch=next_batch),
                                 test=types.SimpleNamespace(images=test_x, labels=test_y))


mnist = read_data_sets(args.data_dir, args.ntrain, args.ntest)  # call mnist function

learningRate = args.learningRate
trainingIters = args.trainingIters
batchSize = args.batchSize
displayStep = args.displayStep

nInput = 28  # we want the input to take the 28 pixels
nSteps = 28  # every 28
nHidden = args.nHidden  # number of neurons for the RNN
nClasses = 10  # this is MNIST so you know

# TF1: x = tf.placeholder('float', [None, nSteps, nInput]); y = tf.placeholder('float', [None, nClasses])
# In TF2 x and y are the arguments of the functions below.

weights = {
    'out': tf.Variable(tf.random.normal([nHidden, nClasses]))
}

biases = {
    'out': tf.Variable(tf.random.normal([nClasses]))
}

# find which lstm to use in the documentation
# TF1: rnn_cell.BasicRNNCell / rnn_cell.BasicLSTMCell(nHidden, forget_bias=1.0) / rnn_cell.GRUCell.
# Created once, outside RNN(), because in TF2 RNN() runs at every step and must not make new variables.
if args.cell == 'rnn':
    lstmCell = tf.keras.layers.SimpleRNNCell(nHidden, activation='tanh')
elif args.cell == 'lstm':
    lstmCell = tf.keras.layers.LSTMCell(nHidden, unit_forget_bias=True)
else:
    lstmCell = tf.keras.layers.GRUCell(nHidden)
lstmCell.build((None, nInput))


def RNN(x, weights, biases):
    x = tf.transpose(x, [1, 0, 2])
    x = tf.reshape(x, [-1, nInput])
    x = tf.split(x, nSteps, 0)  # configuring so you can get it as needed for the 28 pixels

    # for the rnn where to get the output and hidden state
    # TF1: outputs, states = rnn.static_rnn(lstmCell, x, dtype=tf.float32), which is this loop:
    states = lstmCell.get_initial_state(tf.shape(x[0])[0])
    outputs = []
    for xt in x:
        output, states = lstmCell(xt, states)
        outputs.append(output)

    return tf.matmul(outputs[-1], weights['out']) + biases['out']


# optimization
# create the cost, optimization, evaluation, and accuracy
# for the cost softmax_cross_entropy_with_logits seems really good
def cost_fn(x, y):
    pred = RNN(x, weights, biases)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=pred, labels=y))


optimizer = tf.keras.optimizers.Adam(learning_rate=learningRate)  # TF1: tf.train.AdamOptimizer(...)
trainable = [weights['out'], biases['out']] + lstmCell.trainable_variables


@tf.function
def train_step(x, y):
    """TF1: optimizer = tf.train.AdamOptimizer(...).minimize(cost); sess.run(optimizer, feed_dict=...)."""
    with tf.GradientTape() as tape:
        cost = cost_fn(x, y)
    grads = tape.gradient(cost, trainable)
    optimizer.apply_gradients(zip(grads, trainable))
    return cost


@tf.function
def accuracy(x, y):
    correctPred = tf.equal(tf.argmax(RNN(x, weights, biases), 1), tf.argmax(y, 1))
    return tf.reduce_mean(tf.cast(correctPred, tf.float32))


cost = tf.function(cost_fn)

# TF1: init = tf.initialize_all_variables(); with tf.Session() as sess: sess.run(init)
# TF2 variables are initialised when created; there is no session.
summary_writer = tf.summary.create_file_writer(args.result_dir)  # TF1: tf.summary.FileWriter
checkpoint = tf.train.Checkpoint(weights=weights, biases=biases, lstmCell=lstmCell)  # TF1: tf.train.Saver()

step = 1

while step * batchSize < trainingIters:
    batchX, batchY = mnist.train.next_batch(batchSize)  # mnist has a way to get the next batch
    batchX = batchX.reshape((batchSize, nSteps, nInput))

    train_step(batchX, batchY)

    if step % displayStep == 0:
        acc = accuracy(batchX, batchY)
        loss = cost(batchX, batchY)
        print("Iter " + str(step*batchSize) + ", Minibatch Loss= " +
              "{:.6f}".format(loss) + ", Training Accuracy= " +
              "{:.5f}".format(acc))
        with summary_writer.as_default():
            tf.summary.scalar('loss', loss, step=step)
            tf.summary.scalar('accuracy', acc, step=step)
    step += 1
print('Optimization finished')

testData = mnist.test.images.reshape((-1, nSteps, nInput))
testLabel = mnist.test.labels
print("Testing Accuracy:",
      accuracy(testData, testLabel).numpy())

summary_writer.flush()
checkpoint.save(os.path.join(args.result_dir, 'checkpoint'))
