"""embedclf: text classifiers whose first layer is a word embedding."""
