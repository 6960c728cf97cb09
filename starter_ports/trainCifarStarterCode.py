"""trainCifarStarterCode.py (ELEC/COMP 576 Assignment 2, 2016) in TensorFlow 2, filled in.

The TF1 starter line by line: same sections, names, per-sample batch filling and prints.
What changed is only what TF2 requires (see starter_ports/README.md for the table):
placeholders and feed_dict become function arguments, the InteractiveSession goes away,
the graph becomes a ``tf.function``, ``optimizer.minimize`` becomes a ``tf.GradientTape``
step, summaries go through ``tf.summary.create_file_writer``, and ``tf.train.Saver``
becomes ``tf.train.Checkpoint``. The blanks are filled the way the assignment asks:
LeNet5 (conv 5x5x32, pool, conv 5x5x64, pool, fc 1024, dropout, fc 10), softmax
cross-entropy, Adam.

This file is a readable bridge for someone holding the TF1 code; it does not import the
tf_assign2 package (python -m tf_assign2.cifar is the tool). Run it with

    python starter_ports/trainCifarStarterCode.py --data-dir ../shared/data/CIFAR10

(default data: $TF_ASSIGN2_DATA/CIFAR10, else ./CIFAR10).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up chatter

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402  (scipy.misc.imread is gone from SciPy)

# --------------------------------------------------
# setup

parser = argparse.ArgumentParser(description="TF2 port of the assignment's trainCifarStarterCode.py")
parser.add_argument("--data-dir", default=os.path.join(os.environ.get("TF_ASSIGN2_DATA", "."), "CIFAR10"),
                    help="folder holding Train/<class>/ImageNNNNN.png and Test/... "
                         "(default $TF_ASSIGN2_DATA/CIFAR10, else ./CIFAR10)")
parser.add_argument("--ntrain", type=int, default=1000, help="training images per class (1000)")
parser.add_argument("--ntest", type=int, default=100, help="test images per class (100)")
parser.add_argument("--batchsize", type=int, default=50, help="(50)")
parser.add_argument("--iterations", type=int, default=2000, help="training steps (2000 = 10 epochs of 10000 images)")
parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (1e-3)")
parser.add_argument("--result-dir", default="./results/", help="summaries and checkpoints (./results/)")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

result_dir = args.result_dir  # directory where the results from the training are saved
tf.random.set_seed(args.seed)
np.random.seed(args.seed)


def weight_variable(shape):
    '''
    Initialize weights
    :param shape: shape of weights, e.g. [w, h ,Cin, Cout] where
    w: width of the filters
    h: height of the filters
    Cin: the number of the channels of the filters
    Cout: the number of filters
    :return: a tensor variable for weights with initial values
    '''

    # IMPLEMENT YOUR WEIGHT_VARIABLE HERE
    initial = tf.random.truncated_normal(shape, stddev=0.1)  # TF1: tf.truncated_normal
    W = tf.Variable(initial)

    return W


def bias_variable(shape):
    '''
    Initialize biases
    :param shape: shape of biases, e.g. [Cout] where
    Cout: the number of filters
    :return: a tensor variable for biases with initial values
    '''

    # IMPLEMENT YOUR BIAS_VARIABLE HERE
    initial = tf.constant(0.1, shape=shape)
    b = tf.Variable(initial)

    return b


def conv2d(x, W):
    '''
    Perform 2-D convolution
    :param x: input tensor of size [N, W, H, Cin] where
    N: the number of images
    W: width of images
    H: height of images
    Cin: the number of channels of images
    :param W: weight tensor [w, h, Cin, Cout]
    w: width of the filters
    h: height of the filters
    Cin: the number of the channels of the filters = the number of channels of images
    Cout: the number of filters
    :return: a tensor of features extracted by the filters, a.k.a. the results after convolution
    '''

    # IMPLEMENT YOUR CONV2D HERE
    h_conv = tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding='SAME')

    return h_conv


def max_pool_2x2(x):
    '''
    Perform non-overlapping 2-D maxpooling on 2x2 regions in the input data
    :param x: input data
    :return: the results of maxpooling (max-marginalized + downsampling)
    '''

    # IMPLEMENT YOUR MAX_POOL_2X2 HERE
    h_max = tf.nn.max_pool2d(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding='SAME')

    return h_max


ntrain = args.ntrain  # per class
ntest = args.ntest  # per class
nclass = 10  # number of classes
imsize = 28
nchannels = 1
batchsize = args.batchsize

Train = np.zeros((ntrain*nclass, imsize, imsize, nchannels))
Test = np.zeros((ntest*nclass, imsize, imsize, nchannels))
LTrain = np.zeros((ntrain*nclass, nclass))
LTest = np.zeros((ntest*nclass, nclass))

itrain = -1
itest = -1
for iclass in range(0, nclass):
    for isample in range(0, ntrain):
        path = os.path.join(args.data_dir, 'Train/%d/Image%05d.png' % (iclass, isample))
        im = np.asarray(Image.open(path))  # 28 by 28; TF1 file: misc.imread(path)
        im = im.astype(float)/255
        itrain += 1
        Train[itrain, :, :, 0] = im
        LTrain[itrain, iclass] = 1  # 1-hot lable
    for isample in range(0, ntest):
        path = os.path.join(args.data_dir, 'Test/%d/Image%05d.png' % (iclass, isample))
        im = np.asarray(Image.open(path))  # 28 by 28
        im = im.astype(float)/255
        itest += 1
        Test[itest, :, :, 0] = im
        LTest[itest, iclass] = 1  # 1-hot lable

# TF1: sess = tf.InteractiveSession() -- TF2 runs eagerly; there is no session.

# TF1: tf_data, tf_labels and keep_prob were tf.placeholder's fed through feed_dict.
# In TF2 they are the arguments of the functions below:
#   tf_data:   [None, width, height, numberOfChannels] images
#   tf_labels: [None, nclass] one-hot labels
#   keep_prob: dropout keep probability (0.5 while training, 1.0 to evaluate)

# --------------------------------------------------
# model
# create your model

# The variables are created once, here, as in the TF1 graph.
W_conv1 = weight_variable([5, 5, nchannels, 32])
b_conv1 = bias_variable([32])
W_conv2 = weight_variable([5, 5, 32, 64])
b_conv2 = bias_variable([64])
W_fc1 = weight_variable([7*7*64, 1024])
b_fc1 = bias_variable([1024])
W_fc2 = weight_variable([1024, nclass])
b_fc2 = bias_variable([nclass])
variables = [W_conv1, b_conv1, W_conv2, b_conv2, W_fc1, b_fc1, W_fc2, b_fc2]


def model(tf_data, keep_prob):
    """LeNet5: the TF1 graph, as a function of what used to be placeholders; returns logits."""
    # first convolutional layer: 5x5x1 -> 32 maps, ReLU, 2x2 max pooling (28 -> 14)
    h_conv1 = tf.nn.relu(conv2d(tf_data, W_conv1) + b_conv1)
    h_pool1 = max_pool_2x2(h_conv1)

    # second convolutional layer: 5x5x32 -> 64 maps, ReLU, 2x2 max pooling (14 -> 7)
    h_conv2 = tf.nn.relu(conv2d(h_pool1, W_conv2) + b_conv2)
    h_pool2 = max_pool_2x2(h_conv2)

    # densely connected layer: 7*7*64 -> 1024, ReLU
    h_pool2_flat = tf.reshape(h_pool2, [-1, 7*7*64])
    h_fc1 = tf.nn.relu(tf.matmul(h_pool2_flat, W_fc1) + b_fc1)

    # dropout (TF1: tf.nn.dropout(h_fc1, keep_prob); TF2 takes the drop rate)
    h_fc1_drop = tf.nn.dropout(h_fc1, rate=1 - keep_prob)

    # softmax layer: 1024 -> 10 (the softmax itself is inside the loss)
    y_conv = tf.matmul(h_fc1_drop, W_fc2) + b_fc2
    return y_conv


# --------------------------------------------------
# loss
# set up the loss, optimization, evaluation, and accuracy

def cross_entropy_fn(tf_data, tf_labels, keep_prob):
    y_conv = model(tf_data, keep_prob)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=tf_labels, logits=y_conv))


optimizer = tf.keras.optimizers.Adam(args.learning_rate)  # TF1: tf.train.AdamOptimizer(1e-3)


@tf.function
def train_step(tf_data, tf_labels, keep_prob):
    """TF1: optimizer = tf.train.AdamOptimizer(...).minimize(cross_entropy); optimizer.run(feed_dict=...)."""
    with tf.GradientTape() as tape:
        cross_entropy = cross_entropy_fn(tf_data, tf_labels, keep_prob)
    grads = tape.gradient(cross_entropy, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return cross_entropy


@tf.function
def accuracy(tf_data, tf_labels, keep_prob):
    """TF1: accuracy.eval(feed_dict={...})."""
    correct_prediction = tf.equal(tf.argmax(model(tf_data, keep_prob), 1), tf.argmax(tf_labels, 1))
    return tf.reduce_mean(tf.cast(correct_prediction, tf.float32))


# TF1: tf.scalar_summary / tf.summary.merge_all() + tf.summary.FileWriter(result_dir, sess.graph)
summary_writer = tf.summary.create_file_writer(result_dir)
# TF1: saver = tf.train.Saver()
checkpoint = tf.train.Checkpoint(W_conv1=W_conv1, b_conv1=b_conv1, W_conv2=W_conv2, b_conv2=b_conv2,
                                 W_fc1=W_fc1, b_fc1=b_fc1, W_fc2=W_fc2, b_fc2=b_fc2)

# --------------------------------------------------
# optimization

# TF1: sess.run(tf.initialize_all_variables()) -- TF2 variables are initialised when created.
batch_xs = np.zeros([batchsize, imsize, imsize, nchannels])  # setup as [batchsize, width, height, numberOfChannels] and use np.zeros()
batch_ys = np.zeros([batchsize, nclass])  # setup as [batchsize, the how many classes]
nsamples = ntrain*nclass
for i in range(args.iterations):  # try a small iteration size once it works then continue
    perm = np.arange(nsamples)
    np.random.shuffle(perm)
    for j in range(batchsize):
        batch_xs[j, :, :, :] = Train[perm[j], :, :, :]
        batch_ys[j, :] = LTrain[perm[j], :]
    xs = tf.constant(batch_xs, tf.float32)
    ys = tf.constant(batch_ys, tf.float32)
    if i % 10 == 0:
        # calculate train accuracy and print it
        train_accuracy = accuracy(xs, ys, 1.0)
        print("step %d, training accuracy %g" % (i, train_accuracy))
        with summary_writer.as_default():
            tf.summary.scalar('cross_entropy', cross_entropy_fn(xs, ys, 1.0), step=i)
            tf.summary.scalar('accuracy', train_accuracy, step=i)
    train_step(xs, ys, 0.5)  # dropout only during training

# --------------------------------------------------
# test

print("test accuracy %g" % accuracy(tf.constant(Test, tf.float32), tf.constant(LTest, tf.float32), 1.0))

summary_writer.flush()
checkpoint.save(os.path.join(result_dir, 'checkpoint'))  # TF1: saver.save(sess, checkpoint_file)
# TF1: sess.close() -- nothing to close in TF2.
